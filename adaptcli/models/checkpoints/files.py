"""Read a checkpoint file safely, whatever its container: safetensors, torch or numpy ``.npz``.

The container is recognised from the bytes, never from the file name. Torch files are opened with
``torch.load(weights_only=True)``. MAE and VideoMAE training checkpoints also pickle an
``argparse.Namespace`` of arguments; that one class is allowed (:data:`HARMLESS_GLOBALS`). A file
that needs any other global is refused, naming it, before anything is unpickled.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from adaptcli.errors import AdaptError
from adaptcli.files import regular_file

#: Classes beyond torch's weights-only defaults that real training checkpoints carry.
HARMLESS_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


def container_kind(path: str | Path) -> str:
    """``safetensors``, ``npz`` or ``torch``, from the file's first bytes."""
    path = Path(path)
    regular_file(path)  # a FIFO or device would block or never end
    with path.open("rb") as handle:
        head = handle.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        if int.from_bytes(head[:8], "little") + 8 > path.stat().st_size:
            raise AdaptError(f"{path} is a truncated safetensors file (its header is cut off); download or copy it again")
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        return "torch"
    if head[:1] == b"\x80":  # a pickle protocol marker: legacy torch.save
        return "torch"
    raise AdaptError(f"{path} is not a safetensors, torch or .npz checkpoint")


def read_torch(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``, allowing exactly :data:`HARMLESS_GLOBALS` on top."""
    path = str(path)
    allowed = {f"{cls.__module__}.{cls.__qualname__}" for cls in HARMLESS_GLOBALS}
    refused = [name for name in _unsafe_globals(path) if name not in allowed]
    if refused:
        raise _refusal(path, refused[0])
    try:
        with torch.serialization.safe_globals(list(HARMLESS_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, _global_named_in(str(exc))) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdaptError(f"could not read {path} as a torch checkpoint: {first}") from None


def _unsafe_globals(path: str) -> list[str]:
    """Globals the weights-only unpickler would reject, found by reading the pickle, not running it."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except ValueError:  # legacy (non-zip) format: torch.load itself will refuse what it must
        return []


def _global_named_in(message: str) -> str:
    for line in message.splitlines():
        if "GLOBAL" in line:
            return line.strip()
    return message.splitlines()[0] if message else "unknown"


def _refusal(path: str, name: str) -> AdaptError:
    return AdaptError(
        f"refusing to load {path}: it needs arbitrary unpickling ({name} is not a weights-only type); "
        "re-save its state dict with safetensors or torch.save(model.state_dict())"
    )
