"""Image datasets stored as arrays: CIFAR-100 (checked pickles) and SVHN (MATLAB .mat)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from adaptcli.data.sources.base import Item, Listing, select_splits
from adaptcli.errors import AdaptError

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
        data = path.read_bytes()
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
        path = base / split
        if not path.is_file():
            raise AdaptError(f"CIFAR-100 file {path} not found")
        images, labels = _cifar_split(path)
        listing.splits[split] = [Item(key=f"{split}_{i:06d}", label=label, array=images[i])
                                 for i, label in enumerate(labels)]
    return listing


def list_svhn(src: str | Path, splits: list[str] | None = None) -> Listing:
    """SVHN cropped digits from ``{split}_32x32.mat`` (label 10 means the digit 0)."""
    import scipy.io

    src = Path(src)
    available = [s for s in ("train", "test", "extra") if (src / f"{s}_32x32.mat").is_file()]
    chosen = select_splits([s for s in available if s != "extra"] if not splits else available, splits, "svhn")
    if not chosen:
        raise AdaptError(f"no SVHN train_32x32.mat / test_32x32.mat in {src}")
    listing = Listing("svhn", "image", [str(i) for i in range(10)], {})
    for split in chosen:
        path = src / f"{split}_32x32.mat"
        try:
            mat = scipy.io.loadmat(str(path))
            x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
                raise ValueError(f"X must be uint8 32 x 32 x 3 x N matching y, got {x.dtype} {x.shape}")
            labels = [int(v) % 10 for v in y]
            if len(y) and not (1 <= y.min() and y.max() <= 10):
                raise ValueError("labels outside 1..10")
        except (KeyError, ValueError, TypeError, NotImplementedError, OSError) as exc:
            raise AdaptError(f"{path} is not an SVHN .mat file ({exc})") from None
        images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
        listing.splits[split] = [Item(key=f"{split}_{i:06d}", label=label, array=images[i])
                                 for i, label in enumerate(labels)]
    return listing
