"""``export_run``: a run folder to one deployable safetensors file (merged, full or adapter-only)."""

from __future__ import annotations

import copy
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal

from torch import nn

from adaptcli.deploy.check import TOLERANCE, max_abs_difference, random_batch
from adaptcli.deploy.header import ADAPTER, FORMATS, FULL, MERGED, export_metadata
from adaptcli.errors import AdaptError, NotMergeableError

Mode = Literal["merge", "full", "adapter-only"]


def export_run(run_dir: Path, out: Path, mode: Mode) -> dict[str, Any]:
    """Write ``out`` from the run in ``run_dir``; returns what was written and how it checked.

    Keys: ``path``, ``bytes``, ``mode``, ``format``, ``method``, ``backbone``, ``max_abs_diff``
    (None where no check applies), ``tensors``, ``backbone_file`` (adapter-only: a file that fits).
    """
    from adaptcli.engine.finetune import load_run_model
    from adaptcli.engine.run_dir import RunDir

    if mode not in FORMATS:
        raise AdaptError(f"unknown export mode '{mode}': choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise AdaptError(f"--out {out}: the file name must end in .safetensors")
    run = RunDir(Path(getattr(run_dir, "path", run_dir)))  # a RunDir works too
    config = run.config()
    if mode == "merge":
        from adaptcli.methods import get_method

        if not get_method(config.method).mergeable:
            raise NotMergeableError(
                f"{config.method} cannot be merged into the backbone (it adds a non-linear branch or extra "
                "tokens); export with --full or --adapter-only instead"
            )
    if out.resolve().parent == run.path.resolve() and out.name in {
        run.trainable_file.name, run.best_file.name, run.backbone_file.name
    }:
        raise AdaptError(f"--out {out} would replace one of the run's own files; choose another name")
    model, config, info = load_run_model(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = {"merge": _merged, "full": _full, "adapter-only": _adapter}[mode]
    result = writer(model, config, info, run, out)
    result.update(path=str(out), bytes=out.stat().st_size, mode=mode, format=FORMATS[mode],
                  method=config.method, backbone=config.model.name)
    return result


def _inputs(model: nn.Module, config: Any):
    from adaptcli.engine.setup import is_video_model

    return random_batch(config, is_video_model(model))


def _check(diff: float, what: str) -> None:
    if not diff <= TOLERANCE:  # also catches NaN
        raise AdaptError(
            f"{what} check failed: max |difference| = {diff:.3g} > {TOLERANCE:g} against the run's model; "
            "nothing was written"
        )


def _merged(model: nn.Module, config: Any, info: dict, run: Any, out: Path) -> dict[str, Any]:
    """Fold the method in, load the result into a fresh plain model strictly, compare, write."""
    from adaptcli.deploy.build import plain_model
    from adaptcli.engine.weights import save_tensors
    from adaptcli.methods import merge_method

    meta = export_metadata(MERGED, model, config, info)
    merged = merge_method(copy.deepcopy(model))
    state = merged.state_dict()
    plain = plain_model(meta)
    expected, found = set(plain.state_dict()), set(state)
    if expected != found:
        extra = sorted(found - expected) or sorted(expected - found)
        raise NotMergeableError(
            f"the merged {config.method} model does not have {config.model.name}'s key names (first: {extra[0]}); "
            "export with --full instead"
        )
    plain.load_state_dict(state, strict=True)
    diff = max_abs_difference(model, plain, _inputs(model, config))
    _check(diff, "merge")
    save_tensors(out, state, meta)
    return {"max_abs_diff": diff, "tensors": len(state), "create_kwargs": meta["create_kwargs"]}


def _full(model: nn.Module, config: Any, info: dict, run: Any, out: Path) -> dict[str, Any]:
    """The adapted model's whole state dict; checked by loading the written file back."""
    from adaptcli.deploy.load import load

    state = model.state_dict()
    inputs = _inputs(model, config)
    diff = _write_checked(out, state, export_metadata(FULL, model, config, info),
                          lambda tmp: max_abs_difference(model, load(tmp), inputs), "full export")
    return {"max_abs_diff": diff, "tensors": len(state)}


def _adapter(model: nn.Module, config: Any, info: dict, run: Any, out: Path) -> dict[str, Any]:
    """The task's own tensors; checked on the run's backbone file when one is at hand."""
    from adaptcli.deploy.load import load
    from adaptcli.methods import adapter_state_dict

    state = adapter_state_dict(model)
    backbone = run.backbone_file if run.backbone_file.exists() else config.model.checkpoint
    check = None
    if backbone and Path(backbone).is_file():
        inputs = _inputs(model, config)
        check = lambda tmp: max_abs_difference(model, load(tmp, backbone=backbone), inputs)  # noqa: E731
    diff = _write_checked(out, state, export_metadata(ADAPTER, model, config, info), check, "adapter round-trip")
    return {"max_abs_diff": diff, "tensors": len(state), "backbone_file": str(backbone) if backbone else None}


def _write_checked(out: Path, state: dict, meta: dict, check: Callable[[Path], float] | None,
                   what: str) -> float | None:
    """Write to a temporary name, run ``check`` on that file, and only then rename it to ``out``."""
    from adaptcli.engine.weights import save_tensors
    from adaptcli.io import atomic_path

    with atomic_path(out) as tmp:
        staged = tmp.with_name(tmp.name + ".safetensors")  # the loaders want the suffix
        try:
            save_tensors(staged, state, meta)
            diff = check(staged) if check is not None else None
            if diff is not None:
                _check(diff, what)
            staged.rename(tmp)
        finally:
            staged.unlink(missing_ok=True)
    return diff
