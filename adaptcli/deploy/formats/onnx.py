"""One ``.onnx`` file with a dynamic batch axis, checked with ONNX Runtime (``pip install 'adaptcli[onnx]'``).

The exported graph is rebuilt from the export's own tensors (the backbone's architecture for
``--merge``, backbone + method for ``--full``), traced with PyTorch's TorchScript-based exporter
(``dynamo=False``: no onnxscript needed) and run by ONNX Runtime on two batch sizes against the run's
model. The opset and adaptcli's header (classes, mean, std, input size, ...) are in the file.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.deploy.formats import ExportFormat, Opened, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

OPSET = 17
INPUT, OUTPUT = "input", "logits"


def require_onnx() -> None:
    """One line naming the fix when the optional packages are missing."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # a module set to None in sys.modules
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise AdaptError(f"--format onnx needs {' and '.join(missing)}: pip install 'adaptcli[onnx]'")


def export_graph(model: Any, inputs: Any, path: Path) -> None:
    """Trace ``model`` on ``inputs`` into ``path`` with the batch axis left dynamic.

    The model is called through a forward that takes the input only: the tracer makes tensors of a forward's
    other arguments' defaults (timm's EVA ``is_causal=False``), which the model's code cannot take.
    """
    import warnings

    import torch

    class InputOnly(torch.nn.Module):
        def __init__(self, wrapped: torch.nn.Module) -> None:
            super().__init__()
            self.model = wrapped

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python-level shape checks
        try:
            torch.onnx.export(InputOnly(model), (inputs,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - the tracer raises whatever the model's code raises under it
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise AdaptError(f"torch.onnx could not trace {type(model).__name__} ({type(exc).__name__}: {reason}); "
                             "nothing was written: export with --format safetensors instead") from exc


def add_metadata(path: Path, meta: dict[str, Any]) -> None:
    """adaptcli's header as the model's ``metadata_props`` (strings; non-strings JSON-encoded)."""
    import onnx

    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def runtime_difference(path: Path, reference: Any, batches: list[Any]) -> float:
    """Largest ``|ONNX Runtime - PyTorch|`` over ``batches`` (float32, CPU)."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failed run is reported below in one line, not logged too
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            expected = reference(batch.float()).numpy()
            try:
                got = session.run([OUTPUT], {INPUT: batch.float().numpy()})[0]
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind error types
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise AdaptError(f"ONNX Runtime check failed at batch size {len(batch)} (the traced graph may hold "
                                 f"a fixed size: {reason[:200]}); nothing was written: export with --format "
                                 "safetensors instead") from exc
            if got.shape != expected.shape:
                return float("inf")
            worst = max(worst, float(abs(got - expected).max()))
    return worst


def write(export: "Export", out: Path) -> Written:
    """Export, then compare ONNX Runtime with the run's model at two batch sizes before renaming."""
    import copy

    from adaptcli.deploy.build import model_from_state
    from adaptcli.deploy.check import check_difference, random_batch
    from adaptcli.io import atomic_path

    require_onnx()
    model = model_from_state(export.meta, export.state).float()
    reference = copy.deepcopy(export.model).float().eval()
    inputs = export.inputs.float()
    batches = [inputs, random_batch(export.config, video=inputs.ndim == 5, batch=3, seed=1)]  # 2, then 3
    with atomic_path(out) as tmp:
        export_graph(model, inputs, tmp)
        add_metadata(tmp, {**export.meta, "opset": OPSET})
        diff = runtime_difference(tmp, reference, batches)
        check_difference(diff, "ONNX Runtime check")
    sizes = ", ".join(str(len(b)) for b in batches)
    shape = " x ".join(map(str, export.inputs.shape[1:]))
    return Written(
        tensors=len(export.state), max_abs_diff=diff,
        check=f"ONNX Runtime check (opset {OPSET}, batch sizes {sizes})",
        use=(f"use: import onnxruntime; session = onnxruntime.InferenceSession({json.dumps(str(out))})  "
             f'# logits = session.run(None, {{"{INPUT}": batch}})[0], batch: N x {shape} float32, normalised',),
    )


def open_file(path: Path, backbone: Path | None = None) -> Opened:
    """adaptcli's header from the model's ``metadata_props``; ``load()`` is an ONNX Runtime session (CPU)."""
    from adaptcli.deploy.formats import decode_header
    from adaptcli.files import regular_file

    require_onnx()
    import onnx

    regular_file(path)
    try:
        props = onnx.load(str(path), load_external_data=False).metadata_props
    except Exception as exc:  # noqa: BLE001 - onnx raises protobuf and I/O errors of several types
        raise AdaptError(f"{path} is not a readable ONNX file ({type(exc).__name__}); export it again") from None
    header = decode_header({prop.key: prop.value for prop in props})
    if "config" not in header:
        raise AdaptError(f"{path} carries no adaptcli header (exported by an older adaptcli, or not by adaptcli); "
                         "export the run again")

    def load():  # -> Callable[[torch.Tensor], torch.Tensor]
        import onnxruntime
        import torch

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {INPUT: inputs.float().numpy()})[0])
        return forward

    return Opened(header, f"ONNX file {path}", load, runtime="onnxruntime")


register(ExportFormat(
    name="onnx",
    summary="one .onnx file, dynamic batch axis, checked with ONNX Runtime (needs the onnx extra)",
    modes=(ExportMode.MERGE, ExportMode.FULL),
    open=open_file,
    write=write,
    suffix=".onnx",
))
