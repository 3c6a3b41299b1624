"""Every method through ``adaptcli export`` on tiny image runs: merge, full, adapter-only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import adaptcli
from tests.export.conftest import header, invoke

MERGEABLE = ["arc", "arc_att", "linear", "full", "bitfit", "ssf", "lora", "dora"]
UNMERGEABLE = ["adaptformer", "vpt_shallow", "vpt_deep", "adapter_plus"]
ALL = MERGEABLE + UNMERGEABLE


def run_model(run: Path):
    from adaptcli.runs.load import load_run_model
    from adaptcli.runs.folder import RunDir

    loaded = load_run_model(RunDir(run))
    return loaded.model, loaded.config, loaded


def batch(seed: int = 1) -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def max_diff(a, b, x) -> float:
    return float((a(x) - b(x)).abs().max())


def export(run: Path, out: Path, mode: str):
    result = invoke("export", "--run", run, f"--{mode}", "--out", out)
    return result


@pytest.mark.parametrize("method", MERGEABLE)
def test_merged_file_is_a_plain_timm_model_with_the_run_predictions(runs, tmp_path, method):
    import timm
    from safetensors.torch import load_file

    run = runs.get(method)
    out = tmp_path / "model.safetensors"
    result = export(run, out, "merge")
    assert result.exit_code == 0, result.output
    reported = float(re.search(r"max \|difference\| = (\S+)", result.output).group(1))
    assert reported <= 1e-4

    meta = header(out)
    assert meta["format"] == "adaptcli.merged/1"
    assert (meta["backbone"], meta["method"], meta["modality"]) == ("test_vit", method, "image")
    assert meta["classes"] == ["blue", "green", "red"] and meta["num_classes"] == 3
    assert meta["input_size"] == [3, 32, 32] and meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.5, 0.5, 0.5]
    assert "num_frames" not in meta and meta["config"]["method"]["name"] == method

    plain = timm.create_model("test_vit", num_classes=3, img_size=32)
    plain.load_state_dict(load_file(str(out)), strict=True)
    plain.eval()
    model, config, loaded = run_model(run)
    x = batch()
    assert max_diff(model, plain, x) <= 1e-4
    # Not trivially equal: the adapted model is far from its own backbone with the trained head.
    backbone = timm.create_model("test_vit", num_classes=3, img_size=32).eval()
    own = set(loaded.adapt.method_param_names)  # BitFit trains tensors with backbone names
    backbone.load_state_dict({k: v for k, v in model.state_dict().items() if k in backbone.state_dict()
                              and v.shape == backbone.state_dict()[k].shape and k not in own}, strict=False)
    if method != "full":
        assert max_diff(model, backbone, x) > 1e-2

    # Same predictions as `adaptcli eval`: top-1 of the merged model over the eval stream.
    evaluated = invoke("eval", "--run", run, "--split", "test", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((run / "eval.json").read_text())
    from adaptcli.data.stream.evaluation import eval_loader
    from adaptcli.data.stream.shards import ShardFolder
    from adaptcli.data.stream.spec import StreamSpec

    norm_mean, norm_std = meta["mean"], meta["std"]
    spec = StreamSpec.from_config(config.data, 32, config.model.num_frames, norm_mean, norm_std)
    correct = total = 0
    with torch.no_grad():
        for item in eval_loader(ShardFolder.read(loaded.info.data), "test", spec, 7):
            correct += int((plain(item.inputs).argmax(1) == item.labels).sum())
            total += len(item.labels)
    assert total == metrics["samples"] == 18
    assert 100.0 * correct / total == pytest.approx(metrics["top1"])

    assert isinstance(adaptcli.load(out), type(plain))  # the merged file also loads in one call


@pytest.mark.parametrize("method", UNMERGEABLE)
def test_merge_refuses_branches_and_tokens_in_one_line(runs, tmp_path, method):
    out = tmp_path / "model.safetensors"
    result = export(runs.get(method), out, "merge")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot be merged" in lines[0] and "--full" in lines[0], result.output
    assert not out.exists()


@pytest.mark.parametrize("method", ALL)
def test_full_export_loads_with_one_call_without_the_run(runs, tmp_path, method):
    run = runs.get(method)
    out = tmp_path / "full.safetensors"
    result = export(run, out, "full")
    assert result.exit_code == 0, result.output
    assert "reload check: max |difference| = 0.00e+00" in result.output
    assert header(out)["format"] == "adaptcli.full/1"
    model, _, _ = run_model(run)
    x = batch(2)
    hidden = run.with_name(run.name + "-hidden")  # the loader must not need the run (or its backbone)
    run.rename(hidden)
    try:
        loaded = adaptcli.load(out)
    finally:
        hidden.rename(run)
    assert not loaded.training
    assert max_diff(model, loaded, x) <= 1e-6


@pytest.mark.parametrize("method", ALL)
def test_adapter_only_round_trip_and_eval(runs, tmp_path, method):
    from adaptcli.io import read_safetensors as load_tensors

    run = runs.get(method)
    out = tmp_path / "task.safetensors"
    result = export(run, out, "adapter-only")
    assert result.exit_code == 0, result.output
    # The full method trains everything: any backbone file of the architecture will do.
    backbone = run / "backbone.safetensors" if method != "full" else runs.get("arc") / "backbone.safetensors"
    if method != "full":
        assert "adapter round-trip check: max |difference| = 0.00e+00" in result.output
    tensors, _ = load_tensors(out)
    assert header(out)["format"] == "adaptcli.adapter/1"
    model, _, _ = run_model(run)
    if method != "full":  # only the task's own tensors: method + head, no frozen backbone weight
        params = dict(model.named_parameters())
        assert all(params[k].requires_grad for k in tensors if k in params)
        assert not any("base_layer" in k for k in tensors)
    loaded = adaptcli.load(out, backbone=backbone)
    assert not loaded.training
    assert max_diff(model, loaded, batch(3)) <= 1e-6

    evaluated = invoke("eval", "--adapter", out, "--checkpoint", backbone, "--data", json.loads(
        (run / "run.json").read_text())["data"], "--json")
    assert evaluated.exit_code == 0, evaluated.output
    by_adapter = json.loads(evaluated.output[evaluated.output.index("{"):])
    assert invoke("eval", "--run", run, "--json").exit_code == 0
    by_run = json.loads((run / "eval.json").read_text())
    for key in ("top1", "top5", "mean_class_acc", "per_class", "samples"):
        assert by_adapter[key] == by_run[key], key


def test_file_sizes(runs, tmp_path):
    sizes = {}
    for mode in ("full", "adapter-only", "merge"):
        run = runs.get("arc")
        out = tmp_path / f"arc-{mode}.safetensors"
        assert export(run, out, mode).exit_code == 0
        sizes[f"arc-{mode}"] = out.stat().st_size
    for mode in ("full", "adapter-only"):
        out = tmp_path / f"af-{mode}.safetensors"
        assert export(runs.get("adaptformer"), out, mode).exit_code == 0
        sizes[f"af-{mode}"] = out.stat().st_size
    # test_vit is 1.2 MB of float32 weights; the adapters (mid_dim 8, rank 4) are a few tens of KB.
    assert sizes["af-adapter-only"] < 0.05 * sizes["af-full"]
    assert sizes["arc-adapter-only"] < 0.05 * sizes["arc-full"]
    # A merged ARC model is exactly the size of the plain backbone: the adapters are gone.
    assert sizes["arc-merge"] < sizes["arc-full"]


def test_adaptformer_64_on_vit_b_adapter_is_about_5_mb():
    """The issue's numbers, counted on the meta device (no 340 MB allocation)."""
    import timm

    from adaptcli.methods.adaptformer.config import AdaptFormerOptions
    from adaptcli.methods import adapter_state_dict, apply_method

    with torch.device("meta"):
        model = timm.create_model("vit_base_patch16_224", num_classes=100)
        backbone_bytes = sum(v.numel() * 4 for v in model.state_dict().values())
        info = apply_method(model, "adaptformer", AdaptFormerOptions(mid_dim=64))
    adapter_bytes = sum(v.numel() * 4 for v in adapter_state_dict(model, info).values())
    assert 330e6 < backbone_bytes < 350e6
    assert 4.5e6 < adapter_bytes < 5.5e6


def test_peft_tuner_peft_cannot_merge_is_refused_and_exports_otherwise(runs, tmp_path):
    run = runs.get("peft", "colours", "--set", "method.peft_type=LILY")
    out = tmp_path / "model.safetensors"
    result = export(run, out, "merge")
    assert result.exit_code == 2 and not out.exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "peft cannot merge" in lines[0] and "--adapter-only" in lines[0], result.output
    assert export(run, tmp_path / "task.safetensors", "adapter-only").exit_code == 0
    assert export(run, tmp_path / "full.safetensors", "full").exit_code == 0


def test_peft_tuner_with_shared_state_trains_merges_and_reloads(runs, tmp_path):
    import timm
    from safetensors.torch import load_file

    run = runs.get("peft", "colours", "--set", "method.peft_type=VERA", "--set", "method.peft_config={r: 8}")
    out = tmp_path / "model.safetensors"
    result = export(run, out, "merge")
    assert result.exit_code == 0, result.output
    plain = timm.create_model("test_vit", num_classes=3, img_size=32).eval()
    plain.load_state_dict(load_file(str(out)), strict=True)
    model, _, _ = run_model(run)
    assert max_diff(model, plain, batch()) <= 1e-4


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_split_qkv_runs_merge_and_export_adapters(runs, tmp_path, method):
    import timm
    from safetensors.torch import load_file

    run = runs.get(method, "colours", "--set", "method.qkv=split", "--set", "method.split_targets=[q,v]")
    model, _, _ = run_model(run)
    x = batch()
    merged = tmp_path / "model.safetensors"
    assert export(run, merged, "merge").exit_code == 0
    plain = timm.create_model("test_vit", num_classes=3, img_size=32).eval()
    plain.load_state_dict(load_file(str(merged)), strict=True)
    assert max_diff(model, plain, x) <= 1e-5

    adapter = tmp_path / "task.safetensors"
    result = export(run, adapter, "adapter-only")
    assert result.exit_code == 0 and "round-trip check: max |difference| = 0.00e+00" in result.output, result.output
    assert max_diff(model, adaptcli.load(adapter, backbone=run / "backbone.safetensors"), x) <= 1e-6
    assert export(run, tmp_path / "full.safetensors", "full").exit_code == 0

    refused = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", tmp_path / "peft")
    assert refused.exit_code == 2 and "cannot hold method.qkv=split" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "peft").exists()
