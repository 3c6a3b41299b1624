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


def test_zeroi2v_temporal_embedding_trains_resumes_and_the_merge_keeps_it(video_shards, tmp_path):
    """``method.temporal_embedding=true``: the table trains, a resumed run ends as the uninterrupted one, and the
    merged export is the image ViT + the shift + the table, equal to the run through adaptcli.load and the
    printed ``use:`` line; a clip of another length is refused in one line; timm and hub still refuse the merge."""
    import shutil

    import timm
    from safetensors.torch import load_file

    from adaptcli.io import read_safetensors
    from adaptcli.models.frame_shift import FrameCountError
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model
    from tests.export.conftest import finetune, move_away_from_identity

    common = [*IMAGE_ON_VIDEO, "--set", "method.temporal_embedding=true", "--set", "train.epochs=2",
              "--set", "train.keep_checkpoints=3"]
    run = finetune(video_shards, tmp_path / "a", "zeroi2v", *common)
    trained, _ = read_safetensors(run / "trainable.safetensors")
    width = timm.create_model("test_vit").embed_dim
    assert trained["temporal_embedding"].shape == (1, 4, width) and trained["temporal_embedding"].any()  # from zeros
    shutil.copytree(run, tmp_path / "b")  # the run as it stood after epoch 1, resumed
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "epoch-0002")
    for name in ("summary.json", "trainable.safetensors", "best.safetensors"):
        (tmp_path / "b" / name).unlink(missing_ok=True)
    resumed = invoke("finetune", "--method", "zeroi2v", "--recipe", "quick", "--data", video_shards, "--out",
                     tmp_path / "b", "--resume", "--set", "model.img_size=32", "--set", "data.workers=0",
                     "--set", "train.max_steps_per_epoch=2", *common)
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output
    again, _ = read_safetensors(tmp_path / "b" / "trainable.safetensors")
    assert again.keys() == trained.keys()
    for key in trained:
        assert torch.allclose(again[key], trained[key], atol=1e-6, rtol=0), key

    move_away_from_identity(run)
    out = tmp_path / "merged.safetensors"
    result = invoke("export", "--run", run, "--merge", "--out", out)
    assert result.exit_code == 0, result.output
    assert header(out)["frame_shift"] == {"shift_div": None, "offsets": [1, -1], "temporal_embedding": 4}
    image_vit = timm.create_model("test_vit", num_classes=2, img_size=32)
    state = load_file(str(out))
    assert set(state) == set(image_vit.state_dict()) | {"temporal_embedding"}
    model = load_run_model(RunDir(run)).model
    torch.testing.assert_close(state["temporal_embedding"], model.temporal_embedding.detach(), rtol=0, atol=0)
    merged = adaptcli.load(out)
    x = clip(3)
    with torch.no_grad():
        expected = model(x)
        assert float((merged(x) - expected).abs().max()) <= 1e-5
    use = [line for line in result.output.splitlines() if "attach_frame_shift" in line]
    assert len(use) == 1 and "temporal_embedding=4" in use[0], result.output
    scope: dict = {}
    exec(use[0].split("use: ", 1)[1], scope)  # the printed line, as a user runs it
    with torch.no_grad():
        assert float((scope["model"].eval()(x) - expected).abs().max()) <= 1e-5
        try:
            merged(x[:, :, :3])
        except FrameCountError as refused:
            assert "learned for clips of 4 frames, the input has 3" in str(refused) and "\n" not in str(refused)
        else:
            raise AssertionError("a 3-frame clip went through a table of 4 frames")

    for fmt in ("timm", "hub"):
        refused = invoke("export", "--run", run, "--merge", "--format", fmt, "--out", tmp_path / fmt)
        assert refused.exit_code == 2 and "without the temporal shift" in refused.output, refused.output
        assert not (tmp_path / fmt).exists()
    adapter = invoke("export", "--run", run, "--adapter-only", "--out", tmp_path / "task.safetensors")
    assert adapter.exit_code == 0 and "adapter round-trip check: max |difference| = 0.00e+00" in adapter.output, \
        adapter.output
    assert "temporal_embedding" in load_file(str(tmp_path / "task.safetensors"))
    on_backbone = adaptcli.load(tmp_path / "task.safetensors", backbone=run / "backbone.safetensors")
    with torch.no_grad():
        assert float((on_backbone(x) - expected).abs().max()) <= 1e-5
    onnx = invoke("export", "--run", run, "--merge", "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert onnx.exit_code == 0 and "ONNX Runtime check" in onnx.output, onnx.output  # the table traced with the shift


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
