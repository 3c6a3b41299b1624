"""SVHN cropped digits from the MATLAB ``{split}_32x32.mat`` files."""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import DataSource, Found, Item, Listing, SourceOptions, select_splits
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError


def list_svhn(src: str | Path, splits: list[str] | None = None) -> Listing:
    """SVHN cropped digits from ``{split}_32x32.mat`` (label 10 means the digit 0)."""
    import numpy as np
    import scipy.io

    src = Path(src)
    available = [s for s in ("train", "test", "extra") if (src / f"{s}_32x32.mat").is_file()]
    chosen = select_splits([s for s in available if s != "extra"] if not splits else available, splits, "svhn")
    if not chosen:
        raise AdaptError(f"no SVHN train_32x32.mat / test_32x32.mat in {src}")
    listing = Listing("svhn", "image", [str(i) for i in range(10)], {})
    for split in chosen:
        path = listing.origins[split] = src / f"{split}_32x32.mat"
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


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_svhn(src, opts.splits))])


register(DataSource("svhn", "SVHN cropped digits ({split}_32x32.mat)", find, order=50))
