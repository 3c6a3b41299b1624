"""``export --adapter-only --format peft``: a folder ``peft.PeftModel.from_pretrained`` loads onto a plain timm
model in a fresh process, reproducing the run's logits; refused for methods not injected through peft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.export.conftest import invoke
from tests.export.test_timm_folder import ROOT, run_logits

LOADER = """
import json, sys
import torch, timm
import adaptcli  # registers test_vit with timm (a timm ViT of adaptcli's tests)
from peft import PeftModel
from safetensors.torch import load_file, save_file
folder, backbone, kwargs, inputs, out = sys.argv[1:6]
base = timm.create_model("test_vit", **json.loads(kwargs))
base.load_state_dict(load_file(backbone), strict=False)
model = PeftModel.from_pretrained(base, folder, autocast_adapter_dtype=False).eval()  # see LOAD_KWARGS
with torch.no_grad():
    save_file({"logits": model(load_file(inputs)["x"]).contiguous()}, out)
"""


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_a_peft_folder_loads_with_peft_and_matches_the_run(runs, tmp_path, method):
    run = runs.get(method)
    out = tmp_path / f"{method}-peft"
    result = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", out)
    assert result.exit_code == 0, result.output
    assert "PeftModel.from_pretrained check: max |difference|" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["modules_to_save"] == ["head"]
    assert config["use_dora"] is (method == "dora") and config["base_model_name_or_path"] == "test_vit"

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    save_file({"x": inputs}, str(tmp_path / "inputs.safetensors"))
    kwargs = json.dumps({"num_classes": 3, "img_size": 32})  # the run's create_kwargs (TINY: 32 px, 3 colours)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LOADER, str(out), str(run / "backbone.safetensors"), kwargs,
                           str(tmp_path / "inputs.safetensors"), str(tmp_path / "logits.safetensors")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, _ = run_logits(run, inputs)
    assert (load_file(str(tmp_path / "logits.safetensors"))["logits"] - expected).abs().max() <= 1e-5


def test_peft_format_refuses_a_method_peft_did_not_inject(runs, tmp_path):
    result = invoke("export", "--run", runs.get("arc"), "--adapter-only", "--format", "peft", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "methods injected through peft" in result.stderr
    assert not Path(tmp_path / "x").exists()
