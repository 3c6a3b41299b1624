"""Files: crash-safe writing (a temporary name beside the target, then rename) and the one
safetensors reader/writer every layer uses (weights, checkpoints, export headers)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.errors import AdaptError
from adaptcli.files import regular_file

if TYPE_CHECKING:  # pragma: no cover
    import torch


@contextlib.contextmanager
def naming_errors(target: str | Path, staging: str | Path | None = None) -> Iterator[None]:
    """OS errors raised in the block name ``target``: a write's ``ENOSPC`` carries no file name, and one
    on the ``staging`` file (or anything under it) would name a temporary the user never asked for."""
    try:
        yield
    except OSError as exc:
        where = None if exc.filename is None else str(exc.filename)
        staged = staging is not None and where is not None and where.startswith(str(staging))
        if exc.errno is not None and (where is None or staged):
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(target)) from exc
        raise


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; it replaces ``target`` only if the block succeeds.

    Works for files and folders. A crash leaves at most a ``.tmp-`` entry, never a half-written
    target that looks complete.
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    _remove(tmp)
    try:
        with naming_errors(target, tmp):
            yield tmp
            if target.is_dir() and tmp.is_dir():
                _remove(target)
            os.replace(tmp, target)
    finally:
        _remove(tmp)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_figure(path: str | Path, figure: Any) -> Path:
    """Lay out a matplotlib ``figure``, write it to ``path`` as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return Path(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def save_tensors(path: str | Path, tensors: dict[str, "torch.Tensor"], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` (contiguous CPU copies) atomically with string metadata (non-strings JSON-encoded)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(clean, str(tmp), metadata=header)
        except Exception as exc:  # safetensors reports I/O failures as its own error: give the OS error back
            raise os_error(exc, path) from None
        # safetensors creates its file 0600 whatever the umask: give it the mode of any new file (0644 under
        # umask 022), so another user or a serving container can read the weights, as it can the .json beside
        os.chmod(tmp, 0o666 & ~current_umask())


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def os_error(exc: BaseException, path: str | Path) -> BaseException:
    """An ``OSError`` for ``path`` when ``exc``'s message carries an ``os error N`` (safetensors' Rust I/O
    errors), else ``exc`` itself: the CLI names the file and the fix for OS errors."""
    import errno as errnos
    import re

    found = re.search(r"os error (\d+)", str(exc))
    if not found:
        return exc
    code = int(found.group(1))
    return OSError(code, os.strerror(code) if code in errnos.errorcode else str(exc), str(path))


def read_safetensors(path: str | Path, *, tensors: bool = True) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    """Tensors (unless ``tensors=False``: the header only) and raw string metadata of a file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise AdaptError(f"file not found: {path}")
    regular_file(path)  # a FIFO or device: never read
    with path.open("rb"):  # permission problems as the OS names them
        pass
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            loaded = {key: handle.get_tensor(key) for key in handle.keys()} if tensors else {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AdaptError(f"{path} is not a readable safetensors file ({first}); it is damaged or truncated: "
                         "write or copy it again") from None
    return loaded, metadata
