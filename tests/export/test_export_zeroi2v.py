"""ZeroI2V end to end: an image ViT fine-tuned on video shards, merged into the image ViT + the shift."""

from __future__ import annotations

import torch

import adaptcli
from tests.export.conftest import header, invoke

IMAGE_ON_VIDEO = ["--model", "test_vit", "--set", "model.num_frames=4"]


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_zeroi2v_trains_on_video_and_merges_into_the_image_vit_with_the_shift(runs, tmp_path):
    import timm
    from safetensors.torch import load_file

    from adaptcli.models.frame_shift import ShiftedQkv
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = runs.get("zeroi2v", "motion", *IMAGE_ON_VIDEO)
    out = tmp_path / "zeroi2v.safetensors"
    result = invoke("export", "--run", run, "--merge", "--out", out)
    assert result.exit_code == 0, result.output
    meta = header(out)
    assert meta["modality"] == "video" and meta["num_frames"] == 4 and meta["backbone"] == "test_vit"
    assert meta["frame_shift"] == {"shift_div": None, "offsets": [1, -1]}

    image_vit = timm.create_model("test_vit", num_classes=2, img_size=32)
    state = load_file(str(out))
    assert set(state) == set(image_vit.state_dict())  # the image ViT's keys, nothing added
    expected_shapes = {k: v.shape for k, v in image_vit.state_dict().items()}
    assert {k: v.shape for k, v in state.items()} == expected_shapes

    model = load_run_model(RunDir(run)).model
    merged = adaptcli.load(out)
    assert sum(isinstance(m, ShiftedQkv) for m in merged.modules()) == len(image_vit.blocks)
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in image_vit.parameters())
    x = clip()
    with torch.no_grad():
        expected = model(x)
        assert float((merged(x) - expected).abs().max()) <= 1e-5
        image_vit.load_state_dict(state)
        per_frame = image_vit.eval()(x.transpose(1, 2).flatten(0, 1)).view(2, 4, -1).mean(1)
        assert float((per_frame - expected).abs().max()) > 1e-4  # the shift is part of the model

    use = [line for line in result.output.splitlines() if "attach_frame_shift" in line]
    assert len(use) == 1, result.output
    scope: dict = {}
    exec(use[0].split("use: ", 1)[1], scope)  # the printed line, as a user runs it
    with torch.no_grad():
        assert float((scope["model"].eval()(x) - expected).abs().max()) <= 1e-5


def test_zeroi2v_merge_is_refused_where_timm_would_drop_the_shift(runs, tmp_path):
    run = runs.get("zeroi2v", "motion", *IMAGE_ON_VIDEO)
    for fmt in ("timm", "hub"):
        out = tmp_path / fmt
        refused = invoke("export", "--run", run, "--merge", "--format", fmt, "--out", out)
        assert refused.exit_code == 2, refused.output
        assert "without the temporal shift" in refused.output and "--format safetensors" in refused.output
        assert "Traceback" not in refused.output and not out.exists()
        assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_zeroi2v_merge_to_onnx_and_full_timm_folder_keep_the_shift(runs, tmp_path):
    """ONNX traces the merged model's shift (checked by the export against ONNX Runtime on clips); the full timm
    folder rebuilds backbone + method (checked by the export against timm.create_model)."""
    run = runs.get("zeroi2v", "motion", *IMAGE_ON_VIDEO)
    onnx = invoke("export", "--run", run, "--merge", "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert onnx.exit_code == 0 and "ONNX Runtime check" in onnx.output and "N x 3 x 4 x 32 x 32" in onnx.output, onnx.output
    full = invoke("export", "--run", run, "--full", "--format", "timm", "--out", tmp_path / "full")
    assert full.exit_code == 0 and "timm.create_model check" in full.output, full.output
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    x = clip(2)
    with torch.no_grad():
        expected = load_run_model(RunDir(run)).model(x)
        assert float((adaptcli.load(tmp_path / "full")(x) - expected).abs().max()) <= 1e-5


def test_zeroi2v_trains_with_pace_on_video_and_still_merges(runs, tmp_path):
    run = runs.get("zeroi2v", "motion", *IMAGE_ON_VIDEO, "--set", "train.pace_lambda=1", "--set", "train.pace_sigma=1.2")
    merged = invoke("export", "--run", run, "--merge", "--out", tmp_path / "m.safetensors")
    assert merged.exit_code == 0 and "max |difference|" in merged.output, merged.output


def test_zeroi2v_dry_run_checks_the_image_model_on_video_shards(video_shards, tmp_path):
    from tests.engine.conftest import TINY

    out = tmp_path / "run"
    args = ["finetune", "--method", "zeroi2v", "--recipe", "quick", "--data", video_shards, "--out", out, *TINY]
    dry = invoke(*args, *IMAGE_ON_VIDEO, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not out.exists()
    refused = invoke(*args, "--model", "video_vit_test", "--set", "model.num_frames=4", "--dry-run")
    assert refused.exit_code == 2 and "already a video model" in refused.output and not out.exists(), refused.output
    assert "Traceback" not in refused.output


def test_offsets_that_shift_nothing_are_refused_before_training(video_shards, tmp_path):
    """An offset of 0, or one as long as the clip, leaves its heads on their own frame: refused in one line."""
    from tests.engine.conftest import TINY

    out = tmp_path / "run"
    args = ["finetune", "--method", "zeroi2v", "--recipe", "quick", "--data", video_shards, "--out", out, *TINY,
            *IMAGE_ON_VIDEO]
    for offsets, words in (("[1,0]", "an offset of 0"), ("[1,-4]", "reach no frame of a 4-frame clip")):
        for dry in (["--dry-run"], []):
            refused = invoke(*args, "--set", f"method.offsets={offsets}", *dry)
            assert refused.exit_code == 2, refused.output
            lines = refused.output.strip().splitlines()
            assert len(lines) == 1 and words in lines[0] and "method.offsets" in lines[0], refused.output
            assert not out.exists()
    ok = invoke(*args, "--set", "method.offsets=[3,-3]", "--dry-run")  # the longest offsets a 4-frame clip has
    assert ok.exit_code == 0, ok.output
    single = invoke(*args, "--set", "model.num_frames=1", "--dry-run")
    assert single.exit_code == 2 and "has no other frame to shift to; raise model.num_frames" in single.output, \
        single.output
