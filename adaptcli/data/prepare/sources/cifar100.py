"""CIFAR-100 from the python pickles (fine labels), read with an unpickler that runs nothing."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.data.prepare.sources.base import DataSource, Found, Item, Listing, SourceOptions, select_splits
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError
from adaptcli.files import MAX_TEXT_BYTES, read_bounded

if TYPE_CHECKING:
    import numpy as np

# The only globals a CIFAR pickle may name: numpy's array reconstruction (numpy 1 and 2 paths),
# and ``_codecs.encode``, which a protocol-2 pickle written by Python 3 uses for bytes (a pure
# string -> bytes conversion; the original Python 2 files do not even need it).
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _CheckedUnpickler(pickle.Unpickler):
    """Refuses every global except numpy's ndarray reconstruction; nothing else can run."""

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np

        if (module, name) in _ALLOWED_GLOBALS:
            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = "numpy._core.multiarray"  # numpy 2 moved it; avoid the deprecated alias
            elif module.startswith("numpy._core") and not hasattr(np, "_core"):
                module = "numpy.core.multiarray"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def load_checked_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`_CheckedUnpickler` (bytes keys, like ``encoding="bytes"``)."""
    try:
        data = read_bounded(path, MAX_TEXT_BYTES)
        return _CheckedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            ModuleNotFoundError, KeyError) as exc:
        raise AdaptError(f"{path} is not a CIFAR pickle ({exc}); refusing to load it") from None


def _get(record: dict, name: str) -> Any:
    for key in (name.encode(), name):
        if key in record:
            return record[key]
    raise KeyError(name)


def _cifar_split(path: Path) -> tuple[np.ndarray, list[int]]:
    import numpy as np

    record = load_checked_pickle(path)
    try:
        if not isinstance(record, dict):
            raise ValueError("not a dict")
        data = np.asarray(_get(record, "data"))
        labels = [int(v) for v in _get(record, "fine_labels")]
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise ValueError(f"data must be uint8 N x 3072 with N labels, got {data.dtype} {data.shape}")
        if labels and not 0 <= min(labels) <= max(labels) < 100:
            raise ValueError("fine labels outside 0..99")
    except (KeyError, ValueError, TypeError) as exc:
        raise AdaptError(f"{path} is not a CIFAR-100 pickle ({exc})") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def list_cifar100(src: str | Path, splits: list[str] | None = None) -> Listing:
    """CIFAR-100 from ``cifar-100-python/{train,test,meta}`` (fine labels)."""
    src = Path(src)
    base = src / "cifar-100-python" if (src / "cifar-100-python").is_dir() else src
    meta_path = base / "meta"
    if not meta_path.is_file():
        raise AdaptError(f"CIFAR-100 meta not found under {base} (expected cifar-100-python/meta)")
    meta = load_checked_pickle(meta_path)
    try:
        names = _get(meta, "fine_label_names")
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(classes) != 100:
            raise ValueError(f"{len(classes)} fine label names")
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AdaptError(f"{meta_path} is not a CIFAR-100 meta pickle ({exc})") from None
    listing = Listing("cifar100", "image", classes, {})
    for split in select_splits(["train", "test"], splits, "cifar100"):
        path = listing.origins[split] = base / split
        if not path.is_file():
            raise AdaptError(f"CIFAR-100 file {path} not found")
        images, labels = _cifar_split(path)
        listing.splits[split] = [Item(key=f"{split}_{i:06d}", label=label, array=images[i])
                                 for i, label in enumerate(labels)]
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_cifar100(src, opts.splits))])


register(DataSource("cifar100", "CIFAR-100 python pickles (cifar-100-python/)", find, order=40))
