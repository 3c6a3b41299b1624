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


def test_predict_and_eval_take_the_peft_folder(runs, tmp_path):
    """The folder comes back in: predict gives the run's (and the adapter file's) scores, eval the run's metrics.

    Tolerance 1e-4 on softmax scores, as for every export in test_predict.py: the folder computes the run's
    function with peft's LoRA layers (another float32 order of operations), and its export check already
    bounds the logit difference by 1e-4."""
    from tests.export.test_predict import _predict, _raw_images

    run = runs.get("lora")
    backbone = run / "backbone.safetensors"
    folder, adapter = tmp_path / "lora-peft", tmp_path / "lora.safetensors"
    for out, fmt in ((folder, "peft"), (adapter, "safetensors")):
        result = invoke("export", "--run", run, "--adapter-only", "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
    images = tmp_path / "raw"
    names = _raw_images(images)
    by_run, _ = _predict(run, images, tmp_path / "run.jsonl")
    by_file, _ = _predict(adapter, images, "--backbone", backbone, tmp_path / "file.jsonl")
    by_folder, _ = _predict(folder, images, "--backbone", backbone, tmp_path / "folder.jsonl")
    assert sorted(by_folder) == sorted(by_run) == sorted(names)
    for reference in (by_run, by_file):
        for name, top in reference.items():
            assert [t["class"] for t in by_folder[name]] == [t["class"] for t in top], name
            assert all(abs(a["score"] - b["score"]) <= 1e-4 for a, b in zip(by_folder[name], top)), name

    data = json.loads((run / "run.json").read_text())["data"]
    evaluated = invoke("eval", "--export", folder, "--checkpoint", backbone, "--data", data, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    by_export = json.loads(evaluated.output[evaluated.output.index("{"):])
    assert invoke("eval", "--run", run, "--json").exit_code == 0
    on_run = json.loads((run / "eval.json").read_text())
    for key in ("top1", "top5", "per_class", "samples"):
        assert by_export[key] == on_run[key], key
    assert by_export["export"] == str(folder)


def test_a_peft_folder_without_its_backbone_or_on_other_data_is_refused_in_one_line(runs, tmp_path):
    from adaptcli.data.synthetic import write_image
    from tests.engine.conftest import colour_images

    run = runs.get("lora")
    folder, backbone = tmp_path / "lora-peft", run / "backbone.safetensors"
    assert invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", folder).exit_code == 0
    data = json.loads((run / "run.json").read_text())["data"]
    write_image(tmp_path / "one.png", colour_images(1, (200, 0, 0), 0)[0])
    for args, message in (
        (["predict", folder, tmp_path / "one.png"], "pass the backbone weights it attaches to"),
        (["eval", "--export", folder, "--data", data], "pass the backbone weights it attaches to"),
        (["eval", "--export", folder, "--checkpoint", backbone], "--export needs --data"),
        (["eval", "--export", folder, "--checkpoint", backbone, "--data", data, "--split", "nope"],
         "split 'nope' is not in"),
        (["eval", "--export", folder, "--checkpoint", backbone, "--data", runs.shards["motion"]],
         "holds videos but peft folder"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
