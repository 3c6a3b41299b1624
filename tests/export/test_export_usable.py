"""Exports others can use (issue 32, item 6): peft folders for every backbone family adaptcli supports, "use:"
lines that run as printed in a fresh process, a hub card that says where the model and each number came
from, and no local path in any file of any export format."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.export.conftest import OPTIONS, invoke
from tests.export.test_timm_folder import ROOT, run_logits

VIDEO_VIT = ("motion", "--model", "video_vit_test", "--set", "model.num_frames=4")
VIDEO_SWIN = ("motion", "--model", "swin3d_t", "--set", "model.num_frames=4", "--set", "model.img_size=28")
#: (method, data and model, the modules peft saves whole, the run's input shape) per backbone family
FAMILIES = {
    "timm-vit-fc_norm": ("lora", ("colours", "--model", "test_vit2"), ["fc_norm", "head"], (3, 32, 32)),
    "timm-vit-head-norm": ("dora", ("colours", "--set", "head.norm=bn"), ["head"], (3, 32, 32)),
    "timm-vit-loha": ("peft", ("colours", "--set", "method.peft_type=LOHA", "--set", "method.peft_config={r: 4}"),
                      ["head"], (3, 32, 32)),
    "timm-swin": ("lora", ("colours", "--model", "swin_tiny_patch4_window7_224"), ["head.fc"], (3, 32, 32)),
    "video-vit": ("lora", VIDEO_VIT, ["fc_norm", "head"], (3, 4, 32, 32)),
    "video-vit-dora": ("dora", VIDEO_VIT, ["fc_norm", "head"], (3, 4, 32, 32)),
    "video-swin": ("lora", VIDEO_SWIN, ["head"], (3, 4, 28, 28)),
}

#: Runs in a fresh interpreter: each printed snippet (a JSON list in argv) with globals of its own, as a user
#: pastes it, then its ``model`` (or ONNX ``session``) on the inputs; the logits of snippet i go to OUT.i.
RUNNER = """
import json, sys
snippets, inputs, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
for i, snippet in enumerate(snippets):
    scope = {}
    exec(compile(snippet, f"<printed use: {i}>", "exec"), scope)
    import torch
    from safetensors.torch import load_file, save_file
    x = load_file(inputs)["x"]
    if "session" in scope:
        logits = torch.from_numpy(scope["session"].run(None, {"input": x.numpy()})[0])
    else:
        with torch.no_grad():
            logits = scope["model"].eval()(x)
    save_file({"logits": logits.contiguous()}, f"{out}.{i}")
"""


def use_snippets(output: str) -> list[str]:
    """Every "use:" block the export printed (continuation lines indented under it), as Python."""
    snippets: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("use: "):
            snippets.append([line[5:]])
        elif line.startswith("     ") and snippets:
            snippets[-1].append(line[5:])
        else:
            snippets.append([]) if snippets and snippets[-1] else None
    return ["\n".join(lines) for lines in snippets if lines]


def run_printed(snippets: list[str], inputs: torch.Tensor, tmp_path: Path) -> list[torch.Tensor]:
    """Run each snippet exactly as printed in a fresh interpreter (one for all of them, each with its own
    globals), then its model on ``inputs``; the logits of each."""
    save_file({"x": inputs.contiguous()}, str(tmp_path / "inputs.safetensors"))
    out = tmp_path / "logits"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(snippets), str(tmp_path / "inputs.safetensors"),
                           str(out)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, (snippets, done.stderr[-3000:])
    return [load_file(f"{out}.{i}")["logits"] for i in range(len(snippets))]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its hash and mode: what the user owns, to see that nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_peft_folder_of_every_backbone_family_loads_as_printed_and_matches_the_run(runs, tmp_path, family):
    method, (data, *extra), saved, shape = FAMILIES[family]
    run = runs.get(method, data, *extra)
    before = fingerprint(run)
    out = tmp_path / f"{family}-peft"
    result = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == saved
    snippets = use_snippets(result.output)
    assert len(snippets) == 1 and "pretrained=True" not in snippets[0]
    assert f'load_file("{run / "backbone.safetensors"}")' in snippets[0]
    assert ("import adaptcli" in snippets[0]) is family.startswith("video")

    inputs = torch.randn(2, *shape, generator=torch.Generator().manual_seed(5))
    expected, _ = run_logits(run, inputs)
    assert (run_printed(snippets, inputs, tmp_path)[0] - expected).abs().max() <= 1e-5
    assert fingerprint(run) == before


@pytest.mark.parametrize("method", sorted(set(OPTIONS) - {"lora", "dora"}))
def test_peft_format_refuses_every_method_peft_did_not_inject_in_one_line(runs, tmp_path, method):
    run = runs.get(method)
    before = fingerprint(run)
    result = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", tmp_path / "x")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"this run used {method}" in lines[0] and "--format safetensors" in lines[0]
    assert not (tmp_path / "x").exists() and fingerprint(run) == before


EXPORTS = [  # (mode, format, output name)
    ("merge", "safetensors", "merged.safetensors"), ("full", "safetensors", "full.safetensors"),
    ("adapter-only", "safetensors", "adapter.safetensors"), ("adapter-only", "peft", "peft"),
    ("merge", "timm", "timm-merged"), ("full", "timm", "timm-full"), ("merge", "hub", "hub"),
    ("full", "onnx", "full.onnx"),
]


@pytest.mark.parametrize("data", ["image", "video"])
def test_every_use_line_runs_as_printed_and_no_export_holds_a_local_path(runs, tmp_path, tmp_path_factory, data):
    """Every format of one run trained from a --checkpoint file under the test's temporary folder: each printed
    snippet gives the run's logits in a fresh process, and no byte of any exported file names that folder or
    the user's home."""
    pytest.importorskip("onnxruntime")
    source = runs.get("lora") if data == "image" else runs.get("lora", *VIDEO_VIT)
    extra = ("colours",) if data == "image" else VIDEO_VIT
    run = runs.get("lora", *extra, "--checkpoint", source / "backbone.safetensors")
    assert not (run / "backbone.safetensors").exists()  # the run reads the checkpoint file
    before = fingerprint(run)
    shape = (3, 32, 32) if data == "image" else (3, 4, 32, 32)
    inputs = torch.randn(2, *shape, generator=torch.Generator().manual_seed(6))
    expected, _ = run_logits(run, inputs)
    exports = tmp_path / "exports"
    printed: list[tuple[str, str]] = []  # (format, snippet)
    for mode, fmt, name in EXPORTS:
        result = invoke("export", "--run", run, f"--{mode}", "--format", fmt, "--out", exports / name)
        assert result.exit_code == 0, (mode, fmt, result.output)
        snippets = use_snippets(result.output)
        assert snippets, (mode, fmt, result.output)
        for snippet in snippets:
            needs = "adaptcli." in snippet or (fmt != "onnx" and (data == "video" or mode == "full"))
            assert ("import adaptcli" in snippet) is needs, snippet
            printed.append((fmt, snippet))
        for line in result.output.splitlines():
            if line.startswith("cli: "):  # the CLI line an adapter file prints, on the run's own data
                words = shlex.split(line[5:])
                assert words[0] == "adaptcli" and invoke(*words[1:]).exit_code == 0, line

    assert len(printed) == len(EXPORTS) + 1  # merged safetensors: adaptcli's line and plain timm's
    for (fmt, snippet), logits in zip(printed, run_printed([s for _, s in printed], inputs, tmp_path)):
        assert (logits - expected).abs().max() <= (1e-4 if fmt == "onnx" else 1e-5), snippet

    local = [str(tmp_path_factory.getbasetemp()), str(Path.home())]
    files = [path for path in exports.rglob("*") if path.is_file()]
    assert len(files) >= 12
    for path in files:
        content = path.read_bytes()
        assert not [where for where in local if where.encode() in content], path
    header = json.loads((exports / "timm-full" / "config.json").read_text())["adaptcli"]["config"]
    assert header["model"]["checkpoint"] == "backbone.safetensors"  # the file's name, never its path
    assert fingerprint(run) == before


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    block, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(block), body


def test_the_hub_card_names_the_base_model_licence_precision_and_where_each_number_came_from(runs, tmp_path):
    run = runs.get("lora")
    assert invoke("eval", "--run", run, "--split", "validation").exit_code == 0
    evaluated = json.loads((run / "eval.json").read_text())
    info = json.loads((run / "run.json").read_text())
    out = tmp_path / "card"
    before = fingerprint(run)
    result = invoke("export", "--run", run, "--merge", "--format", "hub", "--out", out)
    assert result.exit_code == 0, result.output
    assert fingerprint(run) == before
    meta, body = _card(out)
    assert meta["license"] == "other" and "set `license:` above before publishing" in body
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    folder = Path(info["data"]).name
    assert dataset == {"name": f"imagefolder ({folder})", "type": "imagefolder", "split": "validation"}
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == evaluated["top1"]
    assert f"On imagefolder (folder `{folder}`), split validation:" in body
    assert f"- trained on: imagefolder (folder `{folder}`), split train" in body
    assert "- base model: `test_vit`, weights from random initialisation" in body
    assert info["backbone_sha256"] in body
    summary = json.loads((run / "summary.json").read_text())
    assert summary["precision"] == "no" and "- precision: float32" in body
    assert "best validation top1" in body and "split validation" in body


def test_the_hub_card_names_timms_pretrained_weights_and_their_licence():
    from adaptcli.deploy.formats.hub import base_model
    from adaptcli.models.config import ModelConfig

    base = base_model(ModelConfig(name="test_vit", pretrained=True), None)
    assert base.hub_id == "timm/test_vit.r160_in1k" and base.license == "apache-2.0"
    assert "huggingface.co/timm/test_vit.r160_in1k" in base.source
    on_file = base_model(ModelConfig(name="test_vit", checkpoint="/home/someone/weights/vit.pth"), "ab" * 32)
    assert on_file.source == f"the checkpoint file `vit.pth` (sha256 {'ab' * 32})" and on_file.license == "other"
