"""Load local checkpoints in the layouts the papers' backbones ship in, recognised by their keys.

Call :func:`load_checkpoint` on the freshly built backbone, BEFORE ``apply_method``: adapter, prompt
and probe-head parameters are never in a backbone checkpoint, and VPT changes ``num_prefix_tokens``
which position-table resampling reads.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from torch import nn

from adaptcli.errors import AdaptError
from adaptcli.io import read_safetensors
from adaptcli.models.checkpoints.files import HARMLESS_GLOBALS, container_kind, read_torch
from adaptcli.models.checkpoints.fit import fit_state_dict
from adaptcli.models.checkpoints.formats import detect_format, model_has_qv_bias, to_timm_keys, unwrap
from adaptcli.models.checkpoints.npz import read_jax_npz
from adaptcli.models.checkpoints.report import LoadReport


def load_checkpoint(model: nn.Module, path: str | Path, *, strict_backbone: bool = True) -> LoadReport:
    """Load ``path`` into ``model`` in place; the caller prints ``report.summary()``.

    Raises :class:`~adaptcli.errors.AdaptError` (one line) for an unreadable or unsafe file, or,
    with ``strict_backbone``, when any backbone weight is missing or does not fit.
    """
    path = Path(path)
    if not path.exists():
        raise AdaptError(f"checkpoint not found: {path}")
    try:
        kind = container_kind(path)
        if kind == "npz":
            state, unread = read_jax_npz(path)
            report = LoadReport(str(path), "jax-npz", unused=list(unread))
        else:
            raw = read_safetensors(path)[0] if kind == "safetensors" else read_torch(path)
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError, pickle.UnpicklingError, KeyError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AdaptError(f"checkpoint {path} is unreadable, probably truncated ({type(exc).__name__}: {first}); "
                         "download or copy it again") from None
    if kind != "npz":
        state = unwrap(raw, str(path))
        own_qv = model_has_qv_bias(model)
        fmt = detect_format(state)
        if fmt == "videomae-finetune" and own_qv:
            fmt = "timm"  # q_bias / v_bias are the model's own keys (EVA), not VideoMAE's
        state, dropped, notes = to_timm_keys(state, fmt, fuse_qv=not own_qv)
        report = LoadReport(str(path), fmt, unused=dropped, notes=notes)
    fit_state_dict(model, state, report, strict_backbone=strict_backbone)
    return report


__all__ = ["HARMLESS_GLOBALS", "LoadReport", "load_checkpoint", "detect_format", "unwrap"]
