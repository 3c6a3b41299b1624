"""Video runs through ``adaptcli export``: ARC merged into the registered video model, AdaptFormer full."""

from __future__ import annotations

import json

import torch

import adaptcli
from tests.export.conftest import header, invoke

VIDEO = ["--model", "video_vit_test", "--set", "model.num_frames=4"]


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_video_arc_merges_into_the_registered_video_model(runs, tmp_path):
    import timm
    from safetensors.torch import load_file

    import adaptcli.models.architectures  # noqa: F401
    from adaptcli.deploy.build import plain_model
    from adaptcli.engine.evaluate import evaluate_loaded
    from adaptcli.runs.session import Session
    from adaptcli.runs.load import load_run_model
    from adaptcli.runs.folder import RunDir

    run = runs.get("arc", "motion", *VIDEO)
    out = tmp_path / "video.safetensors"
    result = invoke("export", "--run", run, "--merge", "--out", out)
    assert result.exit_code == 0, result.output
    meta = header(out)
    assert meta["modality"] == "video" and meta["num_frames"] == 4 and meta["input_size"] == [3, 32, 32]
    assert meta["backbone"] == "video_vit_test" and meta["num_classes"] == len(meta["classes"]) == 2

    plain = timm.create_model("video_vit_test", num_classes=2, num_frames=4).eval()
    plain.load_state_dict(load_file(str(out)), strict=True)
    loaded = load_run_model(RunDir(run))
    model, config = loaded.model, loaded.config
    with torch.no_grad():
        x = clip()
        assert float((model(x) - plain(x)).abs().max()) <= 1e-4
        assert float((model(x) - plain_model(meta).eval()(x)).abs().max()) > 1e-3  # weights matter

    assert invoke("eval", "--run", run, "--split", "validation", "--views", "1x1").exit_code == 0
    by_run = json.loads((run / "eval.json").read_text())
    session = Session.for_evaluation(config, run_data(run), plain, num_classes=2)
    by_merged = evaluate_loaded(session, "validation", "1x1").to_dict()
    for key in ("top1", "per_class", "samples"):
        assert by_merged[key] == by_run[key], key


def test_video_adaptformer_full_and_adapter_only(runs, tmp_path):
    from adaptcli.runs.load import load_run_model
    from adaptcli.runs.folder import RunDir

    run = runs.get("adaptformer", "motion", *VIDEO)
    refused = invoke("export", "--run", run, "--merge", "--out", tmp_path / "m.safetensors")
    assert refused.exit_code == 2 and "cannot be merged" in refused.output
    full, adapter = tmp_path / "full.safetensors", tmp_path / "task.safetensors"
    assert invoke("export", "--run", run, "--full", "--out", full).exit_code == 0
    assert invoke("export", "--run", run, "--adapter-only", "--out", adapter).exit_code == 0
    model = load_run_model(RunDir(run)).model
    x = clip(1)
    with torch.no_grad():
        expected = model(x)
        for loaded in (adaptcli.load(full), adaptcli.load(adapter, backbone=run / "backbone.safetensors")):
            assert float((expected - loaded(x)).abs().max()) <= 1e-6
    assert adapter.stat().st_size < 0.1 * full.stat().st_size


def run_data(run):
    return __import__("pathlib").Path(json.loads((run / "run.json").read_text())["data"])
