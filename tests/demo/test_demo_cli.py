"""``adaptcli demo --quick`` end to end (the CI smoke test of the whole chain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adaptcli.cli import app

pytestmark = pytest.mark.slow


def test_quick_demo_prints_the_table_and_writes_the_files(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    text = result.output
    for stage in range(1, 7):
        assert f"[{stage}/6]" in text
    for name in ("linear probe", "attentive probe (V-JEPA)", "VPT-deep", "AdaptFormer-64", "ARC", "LoRA", "LoRA + PACE",
                 "SSF", "Adapter+", "full fine-tuning", "test top-1"):
        assert name in text
    assert "noisy" in text

    assert (out / "top1_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| method |" in (out / "results.md").read_text()
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["method"] for r in rows] == ["linear", "attentive_probe", "vpt_deep", "adaptformer", "arc", "lora",
                                           "lora+pace", "ssf", "adapter_plus", "full"]
    backbone = results["backbone_params"]
    by = {r["method"]: r for r in rows}
    for r in rows:
        assert 0.0 <= r["test_top1"] <= 100.0 and 0.0 <= r["val_top1"] <= 100.0
        assert r["train_seconds"] > 0 and r["trainable_params"] > 0
    assert by["linear"]["trainable_params"] < by["vpt_deep"]["trainable_params"] < by["arc"]["trainable_params"] \
        < by["adaptformer"]["trainable_params"] < by["full"]["trainable_params"]
    for method in ("lora", "ssf", "adapter_plus", "attentive_probe"):
        assert by["linear"]["trainable_params"] < by[method]["trainable_params"] < by["full"]["trainable_params"]
    assert by["full"]["trainable_params"] > backbone
    assert by["lora+pace"]["trainable_params"] == by["lora"]["trainable_params"]  # PACE adds no parameters
    pace_train = yaml.safe_load((Path(by["lora+pace"]["run"]) / "config.yaml").read_text())["train"]
    assert (pace_train["pace_lambda"], pace_train["pace_sigma"]) == (1.0, 1.2)
    assert results["merge_check"]["max_abs_diff"] <= 1e-4
    assert results["merge_check"]["method"] == "arc"
    assert 0.0 <= results["pretrain"]["test_top1"] <= 100.0
