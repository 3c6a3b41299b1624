"""Adapters on the Hub for every method: ``export --adapter-only --format hub`` writes the adapter file (the
backbone's name and SHA-256 in its header), and a card saying how to load it; ``adaptcli.load("hf-hub:USER/NAME",
backbone=FILE)`` and ``adaptcli predict hf-hub:USER/NAME`` read it through huggingface_hub, here offline from a
cache folder laid out as huggingface_hub lays out what it downloads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.export.conftest import invoke
from tests.export.test_predict import _predict, _raw_images
from tests.export.test_timm_folder import run_logits

pytest.importorskip("huggingface_hub", reason="huggingface_hub (a dependency of timm) is not installed")

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("adaptformer", "arc", "vpt_deep")


def put_in_hub_cache(folder: Path, cache: Path, repo: str) -> None:
    """What huggingface_hub leaves after downloading ``repo``: each file once under blobs/ (named by its hash),
    a snapshot folder of relative links to them named by the commit, and refs/main naming that commit."""
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for file in sorted(folder.iterdir()):
        blob = root / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def offline_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
            "HF_HOME": str(cache.parent / "hf-home")}


LOADER = """
import sys, adaptcli, torch
from safetensors.torch import load_file, save_file
inputs = load_file(sys.argv[1])["x"]
out = {}
for name, backbone in zip(sys.argv[3::2], sys.argv[4::2]):
    with torch.no_grad():
        out[name] = adaptcli.load("hf-hub:tester/" + name, backbone=backbone)(inputs).contiguous()
save_file(out, sys.argv[2])
"""


def _hub_export(run: Path, out: Path) -> None:
    result = invoke("export", "--run", run, "--adapter-only", "--format", "hub", "--out", out)
    assert result.exit_code == 0, result.output
    assert "adaptcli.load(" in result.output and "hf-hub:USER/NAME" in result.output


def test_adapter_only_hub_folders_of_adaptformer_arc_and_vpt_load_from_the_hub_cache_and_predict_as_the_run(runs, tmp_path):
    cache = tmp_path / "hub-cache"
    args = []
    for method in METHODS:
        run = runs.get(method)
        folder = tmp_path / f"{method}-hub"
        _hub_export(run, folder)
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter.safetensors"]
        card = (folder / "README.md").read_text()
        sha = json.loads((run / "run.json").read_text())["backbone_sha256"]
        assert sha and f"SHA-256: `{sha}`" in card and "backbone file: `backbone.safetensors`" in card
        assert 'adaptcli.load("hf-hub:USER/NAME", backbone="backbone.safetensors")' in card
        assert str(tmp_path) not in card and "library_name: adaptcli" in card  # no local path published
        put_in_hub_cache(folder, cache, f"tester/{method}")
        args += [method, str(run / "backbone.safetensors")]

    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    save_file({"x": inputs}, str(tmp_path / "x.safetensors"))
    done = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path / "x.safetensors"), str(tmp_path / "y.safetensors"),
                           *args], capture_output=True, text=True, env=offline_env(cache), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = load_file(str(tmp_path / "y.safetensors"))
    for method in METHODS:
        expected, _ = run_logits(runs.get(method), inputs)
        assert float((loaded[method] - expected).abs().max()) <= 1e-5, method
        assert float(expected.abs().max()) > 1e-3  # a real answer, not an empty one


def test_predict_reads_hf_hub_names_offline_and_refuses_a_missing_repo_or_another_backbone(runs, tmp_path):
    run = runs.get("arc")
    folder = tmp_path / "arc-hub"
    _hub_export(run, folder)
    cache = tmp_path / "hub-cache"
    put_in_hub_cache(folder, cache, "tester/arc")
    images = tmp_path / "raw"
    _raw_images(images)
    reference, _ = _predict(run, images, tmp_path / "run.jsonl")

    def predict(model: str, backbone: Path, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "adaptcli", "predict", model, str(images), "--backbone",
                               str(backbone), "--out", str(out), "--no-progress", "--top-k", "3"],
                              capture_output=True, text=True, env=offline_env(cache), cwd=tmp_path, timeout=300)

    done = predict("hf-hub:tester/arc", run / "backbone.safetensors", tmp_path / "hub.jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {Path(r["path"]).name: r["top"] for r in map(json.loads, (tmp_path / "hub.jsonl").read_text().splitlines())}
    assert rows.keys() == reference.keys()
    for name, top in rows.items():
        assert [t["class"] for t in top] == [t["class"] for t in reference[name]]
        assert all(abs(a["score"] - b["score"]) <= 1e-5 for a, b in zip(top, reference[name]))
    assert "hf-hub:tester/arc" in done.stdout

    missing = predict("hf-hub:tester/absent", run / "backbone.safetensors", tmp_path / "absent.jsonl")
    errors = [line for line in missing.stderr.splitlines() if line.strip()]
    assert missing.returncode == 2 and len(errors) == 1, missing.stderr[-3000:]
    assert "not in the local Hugging Face cache" in errors[0] and "huggingface-cli download tester/absent" in errors[0]
    assert not (tmp_path / "absent.jsonl").exists()

    # Another backbone (one tensor changed) is refused before anything loads; the user's files stay as they were.
    tensors = load_file(str(run / "backbone.safetensors"))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1
    other = tmp_path / "other-backbone.safetensors"
    save_file(tensors, str(other))
    before = other.read_bytes()
    wrong = predict("hf-hub:tester/arc", other, tmp_path / "wrong.jsonl")
    errors = [line for line in wrong.stderr.splitlines() if line.strip()]
    assert wrong.returncode == 2 and len(errors) == 1, wrong.stderr[-3000:]
    assert "SHA-256 differs" in errors[0] and str(other) in errors[0]
    assert other.read_bytes() == before and not (tmp_path / "wrong.jsonl").exists()

    import adaptcli
    from adaptcli.errors import AdaptError

    with pytest.raises(AdaptError, match="pass the backbone file"):
        adaptcli.load(folder)  # the local folder too: an adapter needs its backbone


def test_a_lora_hub_folder_also_holds_peft_files_that_peft_loads(runs, tmp_path):
    import adaptcli
    from adaptcli.deploy.adapter import AdapterSwitcher
    from adaptcli.deploy.formats.peft import LOAD_KWARGS
    from peft import PeftModel

    run = runs.get("lora")
    folder = tmp_path / "lora-hub"
    _hub_export(run, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter.safetensors", "adapter_config.json",
                                                        "adapter_model.safetensors"]
    assert "PeftModel.from_pretrained(base, \"USER/NAME\"" in (folder / "README.md").read_text()
    backbone = run / "backbone.safetensors"
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    expected, _ = run_logits(run, inputs)
    base = AdapterSwitcher(backbone).backbone_for(_header(folder))
    with torch.no_grad():
        by_peft = PeftModel.from_pretrained(base, str(folder), **LOAD_KWARGS).eval()(inputs)
        by_adaptcli = adaptcli.load(folder, backbone=backbone)(inputs)
    assert float((by_peft - expected).abs().max()) <= 1e-5
    assert float((by_adaptcli - expected).abs().max()) <= 1e-5

    # A split-qkv LoRA, which peft's format cannot hold: the adapter file alone, and a card without peft's lines.
    split = runs.get("lora", "colours", "--set", "method.qkv=split")
    _hub_export(split, tmp_path / "split-hub")
    assert sorted(p.name for p in (tmp_path / "split-hub").iterdir()) == ["README.md", "adapter.safetensors"]
    assert "PeftModel" not in (tmp_path / "split-hub" / "README.md").read_text()
    expected, _ = run_logits(split, inputs)
    with torch.no_grad():
        got = adaptcli.load(tmp_path / "split-hub", backbone=split / "backbone.safetensors")(inputs)
    assert float((got - expected).abs().max()) <= 1e-5


def _header(folder: Path) -> dict:
    from adaptcli.deploy import read_header

    return read_header(folder / "adapter.safetensors")


def test_push_in_offline_mode_is_one_line_and_keeps_the_adapter_folder(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "pushed"
    result = invoke("export", "--run", runs.get("vpt_deep"), "--adapter-only", "--format", "hub", "--out", out,
                    "--push", "someone/vpt-test")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --push someone/vpt-test: the Hugging Face Hub is switched off")
    assert f"huggingface-cli upload someone/vpt-test {out}" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter.safetensors"]


def test_eval_export_takes_hf_hub_names_of_adapter_and_merged_hub_folders(runs, tmp_path, monkeypatch):
    from huggingface_hub import constants

    run = runs.get("arc")
    data = json.loads((run / "run.json").read_text())["data"]
    assert invoke("eval", "--run", run, "--json").exit_code == 0
    on_run = json.loads((run / "eval.json").read_text())
    cache = tmp_path / "hub-cache"
    _hub_export(run, tmp_path / "adapter-hub")
    merged = invoke("export", "--run", run, "--merge", "--format", "hub", "--out", tmp_path / "merged-hub")
    assert merged.exit_code == 0, merged.output
    put_in_hub_cache(tmp_path / "adapter-hub", cache, "tester/arc-adapter")
    put_in_hub_cache(tmp_path / "merged-hub", cache, "tester/arc-merged")
    # huggingface_hub read its settings when it was imported: set them where it looks them up at each call
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    for name, extra in (("tester/arc-adapter", ["--checkpoint", run / "backbone.safetensors"]),
                        ("tester/arc-merged", [])):
        result = invoke("eval", "--export", f"hf-hub:{name}", *extra, "--data", data, "--json")
        assert result.exit_code == 0, (name, result.output)
        got = json.loads(result.stdout[result.stdout.index("{"):])
        for key in ("top1", "top5", "per_class", "samples"):
            assert got[key] == on_run[key], (name, key)
    needs = invoke("eval", "--export", "hf-hub:tester/arc-adapter", "--data", data)
    assert needs.exit_code == 2 and len(needs.stderr.strip().splitlines()) == 1
    assert "pass the backbone file it attaches to" in needs.stderr


def test_the_printed_use_line_runs_as_printed_in_a_fresh_process(runs, tmp_path):
    """The first ``use:`` line of an adapter-only hub export is complete Python: it imports what it calls."""
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run, out = runs.get("adaptformer"), tmp_path / "adapter hub"
    result = invoke("export", "--run", run, "--adapter-only", "--format", "hub", "--out", out)
    assert result.exit_code == 0, result.output
    use = [line.split("use: ", 1)[1] for line in result.output.splitlines() if line.startswith("use: ")]
    assert len(use) == 1, result.output
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    save_file({"x": inputs}, str(tmp_path / "x.safetensors"))
    script = (f"{use[0]}\nimport torch\nfrom safetensors.torch import load_file, save_file\n"
              f"x = load_file({str(tmp_path / 'x.safetensors')!r})['x']\n"
              f"with torch.no_grad():\n    save_file({{'y': model.eval()(x).contiguous()}}, {str(tmp_path / 'y.safetensors')!r})\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=os.getcwd())
    assert ran.returncode == 0, ran.stderr[-2000:]
    with torch.no_grad():
        expected = load_run_model(RunDir(run)).model.eval()(inputs)
    assert float((load_file(str(tmp_path / "y.safetensors"))["y"] - expected).abs().max()) <= 1e-5
