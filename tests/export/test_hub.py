"""``export --format hub``: the timm folder plus a model card the Hub reads; ``--push`` without a network is
one line and leaves the folder written."""

from __future__ import annotations

import json

import torch
import yaml

from tests.export.conftest import invoke
from tests.export.test_timm_folder import load_in_fresh_process, run_logits


def _card(folder) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    block, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(block), body


def test_hub_folder_has_the_timm_files_and_a_card_with_the_runs_results(runs, tmp_path):
    run = runs.get("arc")
    evaluated = invoke("eval", "--run", run, "--split", "test", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    top1 = json.loads((run / "eval.json").read_text())["top1"]
    out = tmp_path / "arc-hub"
    result = invoke("export", "--run", run, "--merge", "--format", "hub", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    meta, body = _card(out)
    assert meta["library_name"] == "timm" and meta["pipeline_tag"] == "image-classification"
    assert "arc" in meta["tags"] and "adaptcli" in meta["tags"] and meta["metrics"] == ["accuracy"]
    scored = meta["model-index"][0]["results"][0]["metrics"][0]
    assert scored["type"] == "accuracy" and scored["value"] == top1
    summary = json.loads((run / "summary.json").read_text())
    assert f"trainable parameters: {summary['trainable_params']}" in body and "timm.create_model(" in body

    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    logits, _ = load_in_fresh_process(out, inputs, tmp_path, prelude="")
    assert (logits - run_logits(run, inputs)[0]).abs().max() <= 1e-5


def test_push_without_a_network_is_one_line_and_keeps_the_folder(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "pushed"
    result = invoke("export", "--run", runs.get("arc"), "--merge", "--format", "hub", "--out", out,
                    "--push", "someone/arc-test")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --push someone/arc-test: the Hugging Face Hub")
    assert f"the folder is written at {out}" in errors[0] and (out / "README.md").is_file()


def test_push_needs_the_hub_format(runs, tmp_path):
    result = invoke("export", "--run", runs.get("arc"), "--merge", "--out", tmp_path / "m.safetensors",
                    "--push", "someone/x")
    assert result.exit_code == 2 and "add --format hub" in result.stderr
    assert not (tmp_path / "m.safetensors").exists()
