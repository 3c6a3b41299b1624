"""``export --format onnx``: a dynamic batch axis, ONNX Runtime equal to PyTorch, image and video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.export.conftest import invoke

VIDEO = ["--model", "video_vit_test", "--set", "model.num_frames=4"]
ROOT = Path(__file__).resolve().parents[2]
CASES = [  # (method, data, extra args, mode, one input's shape)
    ("arc", "colours", (), "merge", (3, 32, 32)),
    ("adaptformer", "colours", (), "full", (3, 32, 32)),
    ("adaptformer", "motion", tuple(VIDEO), "full", (3, 4, 32, 32)),
    ("arc", "motion", tuple(VIDEO), "merge", (3, 4, 32, 32)),
    # the probe's query follows the traced batch size (depth 1: weights moved by noise stay within float32's 1e-4)
    ("attentive_probe", "colours", ("--set", "method.depth=1"), "full", (3, 32, 32)),
    ("attentive_probe", "motion", (*VIDEO, "--set", "method.depth=1"), "full", (3, 4, 32, 32)),
]


@pytest.mark.parametrize("method,data,extra,mode,shape", CASES, ids=[f"{c[1]}-{c[0]}-{c[3]}" for c in CASES])
def test_onnx_runtime_matches_pytorch_at_two_batch_sizes(runs, tmp_path, method, data, extra, mode, shape):
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'adaptcli[onnx]')")
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'adaptcli[onnx]')")
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = runs.get(method, data, *extra)
    out = tmp_path / "model.onnx"
    result = invoke("export", "--run", run, f"--{mode}", "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime check (opset 17, batch sizes 2, 3): max |difference| =" in result.output

    graph = onnx.load(str(out))
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["opset"]) == 17 and any(o.version == 17 for o in graph.opset_import if o.domain == "")
    assert json.loads(props["classes"]) and props["method"] == method
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic, not fixed

    model = load_run_model(RunDir(run)).model.eval()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            expected = model(x).numpy()
        assert got.shape == expected.shape == (batch, len(json.loads(props["classes"])))
        assert abs(got - expected).max() <= 1e-4


def test_without_onnxruntime_the_command_says_so_in_one_line(runs, tmp_path):
    out = tmp_path / "model.onnx"
    hide = ("import sys; sys.modules['onnxruntime'] = None; from adaptcli.cli import main; "
            f"sys.argv = ['adaptcli', 'export', '--run', {str(runs.get('arc'))!r}, '--merge', "
            f"'--format', 'onnx', '--out', {str(out)!r}]; main()")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2
    assert lines == ["error: --format onnx needs onnxruntime: pip install 'adaptcli[onnx]'"]
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_onnx_needs_the_onnx_suffix_and_a_file_mode(runs, tmp_path):
    result = invoke("export", "--run", runs.get("arc"), "--merge", "--format", "onnx", "--out", tmp_path / "m.bin")
    assert result.exit_code == 2 and "must end in .onnx" in result.output
    result = invoke("export", "--run", runs.get("arc"), "--adapter-only", "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "not adapter-only" in result.output


def test_export_help_lists_every_registered_format_on_its_own_line():
    from typer.testing import CliRunner

    from adaptcli.cli import app
    from adaptcli.deploy.formats import FORMATS, export_format

    assert {"safetensors", "timm", "onnx"} <= set(FORMATS.names())
    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    lines = [line.strip(" │") for line in result.output.splitlines()]
    for name in FORMATS.names():
        assert f"{name}: {export_format(name).summary}" in lines, name


def test_a_graph_that_froze_the_batch_size_is_refused_in_one_line(tmp_path):
    """A graph that holds the traced batch size (len() of a tensor is a constant to the tracer): ONNX Runtime
    fails at another batch size, and the export check says so in one line instead of a traceback."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'adaptcli[onnx]')")
    from adaptcli.deploy.formats.onnx import export_graph, runtime_difference
    from adaptcli.errors import AdaptError

    class FixedBatch(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones(1, 3).expand(len(x), -1) * x.flatten(2).mean(-1)  # len(): a constant when traced

    model, path = FixedBatch().eval(), tmp_path / "m.onnx"
    export_graph(model, torch.randn(2, 3, 4, 4), path)
    assert runtime_difference(path, model, [torch.randn(2, 3, 4, 4)]) <= 1e-6
    with pytest.raises(AdaptError) as refused:
        runtime_difference(path, model, [torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4)])
    message = str(refused.value)
    assert "\n" not in message and "at batch size 3" in message and "--format safetensors" in message
