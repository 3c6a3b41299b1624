"""The export formats beyond safetensors on the EVA-02 family (tiny configs of its timm class): ONNX traces timm's
EVA (whose forward takes more than the input), and --format peft refuses what PeftModel would load wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.engine.conftest import image_shards  # noqa: F401  (a session fixture: 3 colour classes)
from tests.export.conftest import invoke
from tests.models.test_backbone_families import FAMILIES, register_tiny


def lora_run(family: str, shards: Path, out: Path) -> Path:
    size = str(FAMILIES[family][1]["img_size"])
    result = invoke("finetune", "--method", "lora", "--model", register_tiny(family), "--recipe", "quick",
                    "--data", shards, "--out", out, "--set", f"model.img_size={size}", "--set", "data.workers=0",
                    "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2", "--set", "method.r=2")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("family", ["eva02", "eva02_fused"])
def test_a_merged_eva02_lora_exports_to_onnx_equal_to_the_run(family, image_shards, tmp_path):  # noqa: F811
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = lora_run(family, image_shards, tmp_path / "run")
    out = tmp_path / "m.onnx"
    result = invoke("export", "--run", run, "--merge", "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    size = FAMILIES[family][1]["img_size"]
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = load_run_model(RunDir(run)).model.eval()(x).numpy()
    assert abs(session.run(None, {"input": x.numpy()})[0] - expected).max() <= 1e-4


def test_peft_folders_refuse_a_qkv_whose_biases_timm_adds_outside_it(image_shards, tmp_path):  # noqa: F811
    """EVA-02 tiny/small: timm's attention computes F.linear(x, qkv.weight, q/v bias), which a PeftModel's wrapped
    qkv never runs; --format peft refuses in one line, and the hub folder keeps adaptcli's adapter file only."""
    run = lora_run("eva02_fused", image_shards, tmp_path / "run")
    out = tmp_path / "peft"
    refused = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", out)
    assert refused.exit_code == 2, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "adds the q/v biases outside qkv" in lines[0] and "--format safetensors" in lines[0]
    assert not out.exists()
    hub = invoke("export", "--run", run, "--adapter-only", "--format", "hub", "--out", tmp_path / "hub")
    assert hub.exit_code == 0, hub.output
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == ["README.md", "adapter.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "run"]  # nothing half-written beside them
