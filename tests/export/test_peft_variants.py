"""peft's newer LoRA variants through ``--method peft``: PiSSA and OLoRA keep the user's backbone and export as
adapters of it (issue 33 item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from tests.export.conftest import finetune, invoke
from tests.export.test_peft_format import LOADER
from tests.export.test_timm_folder import ROOT, run_logits

KWARGS = {"num_classes": 3, "img_size": 32}  # the runs' create_kwargs (TINY: 32 px, 3 colours)


def original_backbone(path) -> dict[str, torch.Tensor]:
    """The user's backbone file: a timm state dict (not the run's), trained from with --checkpoint."""
    torch.manual_seed(11)
    state = {k: v.contiguous() for k, v in timm.create_model("test_vit", **KWARGS).state_dict().items()}
    save_file(state, str(path))
    return state


def peft_run(shards, out, init: str, *extra: str):
    return finetune(shards, out, "peft", "--set", "method.peft_type=LORA",
                    "--set", f"method.peft_config={{r: 4, lora_alpha: 8, init_lora_weights: {init}}}",
                    "--set", "train.lr=0.05", *extra)


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_export_onto_the_original_backbone(image_shards, tmp_path, init):
    backbone = tmp_path / "vit.safetensors"
    original = original_backbone(backbone)
    run = peft_run(image_shards, tmp_path / "run", init, "--set", f"model.checkpoint={backbone}")
    trained = load_file(str(run / "trainable.safetensors"))
    # Two steps moved the adapter away from its initial factors (kept as frozen buffers).
    assert (trained["blocks.0.attn.qkv.lora_A.default.weight"]
            - trained["blocks.0.attn.qkv.init_offset.A"]).abs().max() > 1e-4
    after = load_file(str(backbone))  # the user's file is untouched
    assert after.keys() == original.keys() and all(torch.equal(after[k], v) for k, v in original.items())

    folder, adapter = tmp_path / "peft", tmp_path / "adapter.safetensors"
    for out, fmt in ((folder, "peft"), (adapter, "safetensors")):
        result = invoke("export", "--run", run, "--adapter-only", "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["init_lora_weights"] is True and config["r"] == 8 and config["lora_alpha"] == 16

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    save_file({"x": inputs}, str(tmp_path / "inputs.safetensors"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LOADER, str(folder), str(backbone), json.dumps(KWARGS),
                           str(tmp_path / "inputs.safetensors"), str(tmp_path / "logits.safetensors")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, _ = run_logits(run, inputs)
    assert (load_file(str(tmp_path / "logits.safetensors"))["logits"] - expected).abs().max() <= 1e-5

    import adaptcli

    with torch.no_grad():
        attached = adaptcli.load(adapter, backbone=backbone)(inputs)
    assert (attached - expected).abs().max() <= 1e-5


def test_a_pissa_run_keeps_the_original_weights_and_merges_exactly(image_shards, tmp_path):
    torch.manual_seed(0)
    run = peft_run(image_shards, tmp_path / "run", "pissa")
    kept = load_file(str(run / "backbone.safetensors"))
    # The kept backbone is the one the run started from (train.seed's draw), not PiSSA's residual W - s B0 A0.
    from adaptcli.runs.folder import RunDir

    config = RunDir(run).config()
    torch.manual_seed(config.train.seed)
    drawn = timm.create_model("test_vit", **KWARGS).state_dict()
    assert torch.equal(kept["blocks.0.attn.qkv.weight"], drawn["blocks.0.attn.qkv.weight"])

    merged = tmp_path / "merged.safetensors"
    result = invoke("export", "--run", run, "--merge", "--out", merged)
    assert result.exit_code == 0, result.output
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    expected, _ = run_logits(run, inputs)
    import adaptcli

    with torch.no_grad():
        assert (adaptcli.load(merged)(inputs) - expected).abs().max() <= 1e-5
