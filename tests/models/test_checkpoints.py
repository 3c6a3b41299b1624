"""Every checkpoint layout, written the way its project writes it, loads into the same outputs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from adaptcli.errors import AdaptError
from adaptcli.models.checkpoints import load_checkpoint
from tests.models.backbone_zoo import batch_for, build
from tests.models.original_layouts import (
    VideoMAEReference,
    mae_pretrain_state,
    training_checkpoint,
    videomae_pretrain_state,
    videomae_table,
    vit_jax_arrays,
)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b)


# --------------------------------------------------------------------------- timm state dicts


@pytest.mark.parametrize("writer", ["safetensors", "torch", "torch-model", "torch-state_dict", "torch-module"])
def test_timm_state_dict_in_every_wrapper(tmp_path: Path, writer: str) -> None:
    source = build("image_vit", seed=1)
    state = source.state_dict()
    path = tmp_path / "weights.bin"  # the name says nothing: detection reads the bytes and keys
    if writer == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif writer == "torch":
        torch.save(state, path)
    elif writer == "torch-module":
        torch.save({"module": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save({writer.split("-")[1]: state, "epoch": 2}, path)
    target = build("image_vit", seed=2)
    report = load_checkpoint(target, path)
    assert report.format == "timm"
    assert not report.missing and not report.unused
    x = batch_for(source)
    with torch.no_grad():
        assert _same(target(x), source(x))


def test_position_table_resampled_and_classifier_dropped(tmp_path: Path) -> None:
    source = build("image_vit", num_classes=3, seed=1)  # 32 px: 2 x 2 grid
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    target = build("image_vit", num_classes=5, seed=2, img_size=48)  # 3 x 3 grid, 5 classes
    report = load_checkpoint(target, path)

    expected = resample_abs_pos_embed(source.pos_embed.detach(), new_size=(3, 3), num_prefix_tokens=1)
    assert torch.allclose(target.pos_embed, expected, atol=1e-6)
    assert any(r.startswith("pos_embed (1, 5, 64) -> (1, 10, 64)") for r in report.resampled)
    assert report.missing == ["head.weight", "head.bias"]
    assert set(report.unused) == {"head.weight", "head.bias"}
    assert "newly initialised" in report.summary()
    # timm's own local-file loader agrees to the last bit (from timm 1.0.31: older ViTs read any local
    # `file` as a big_vision .npz, so there is nothing to compare with)
    if tuple(int(p) for p in timm.__version__.split(".")[:3]) < (1, 0, 31):
        return
    timm_loaded = timm.create_model(
        "vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
        img_size=48, embed_dim=64, depth=2, num_heads=2, num_classes=5,
    ).eval()
    timm_loaded.head.load_state_dict(target.head.state_dict())
    x = batch_for(target)
    with torch.no_grad():
        assert _same(target(x), timm_loaded(x))


# --------------------------------------------------------------------------- MAE


def test_mae_pretraining_checkpoint(tmp_path: Path) -> None:
    source = build("image_vit", seed=1)  # token pooling: the final norm is used
    path = tmp_path / "checkpoint-799.pth"
    torch.save(training_checkpoint(mae_pretrain_state(source)), path)
    target = build("image_vit", seed=2)
    report = load_checkpoint(target, path)
    assert report.format == "mae-pretrain"
    assert "mask_token" in report.unused and "decoder_pred.weight" in report.unused
    assert report.missing == ["head.weight", "head.bias"]
    x = batch_for(source)
    with torch.no_grad():
        assert _same(target.forward_features(x), source.forward_features(x))


def test_mae_pretraining_into_mean_pooling_vit(tmp_path: Path) -> None:
    """MAE's fine-tuning: global pooling, the pre-training ``norm`` unused, ``fc_norm`` fresh."""
    source = build("image_vit", seed=1)
    path = tmp_path / "mae.pth"
    torch.save(training_checkpoint(mae_pretrain_state(source)), path)
    target = build("image_vit", seed=2, global_pool="avg")
    report = load_checkpoint(target, path)
    assert {"norm.weight", "norm.bias"} <= set(report.unused)
    assert set(report.missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}


# --------------------------------------------------------------------------- VideoMAE


def test_videomae_finetune_checkpoint_matches_reference(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = VideoMAEReference().eval()
    path = tmp_path / "ssv2_finetuned.pth"
    torch.save(training_checkpoint(reference.state_dict()), path)
    target = build("video_vit", seed=2)
    report = load_checkpoint(target, path)
    assert report.format == "videomae-finetune"
    assert not report.missing and not report.unused
    assert "blocks.0.attn.q_bias" not in target.state_dict()
    x = batch_for(target)
    with torch.no_grad():
        assert torch.allclose(target(x), reference(x), atol=1e-5, rtol=0)
    qkv_bias = target.blocks[0].attn.qkv.bias
    assert torch.count_nonzero(qkv_bias[64:128]) == 0  # VideoMAE has no key bias


def test_videomae_pretrain_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = VideoMAEReference().eval()
    path = tmp_path / "pretrain.pth"
    torch.save(training_checkpoint(videomae_pretrain_state(reference)), path)
    target = build("video_vit", seed=2)
    report = load_checkpoint(target, path)
    assert report.format == "videomae-pretrain"
    assert {"mask_token", "encoder_to_decoder.weight", "decoder.norm.weight", "norm.weight"} <= set(report.unused)
    assert set(report.missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    x = batch_for(target)
    with torch.no_grad():
        assert torch.allclose(target.forward_features(x), reference.tokens(x), atol=1e-5, rtol=0)


def test_videomae_checkpoint_at_another_frame_count(tmp_path: Path) -> None:
    """The fixed table is recomputed: 16-frame weights run at 8 frames as VideoMAE runs them."""
    torch.manual_seed(1)
    reference = VideoMAEReference().eval()
    path = tmp_path / "k400.pth"
    torch.save({"model": reference.state_dict()}, path)
    target = build("video_vit", seed=2, num_frames=8, img_size=48)
    load_checkpoint(target, path)
    x = batch_for(target)
    assert x.shape[2:] == (8, 48, 48)
    with torch.no_grad():
        assert torch.allclose(target(x), reference(x), atol=1e-5, rtol=0)


def test_stored_fixed_table_is_ignored_but_learned_table_refused(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = VideoMAEReference().eval()
    state = dict(reference.state_dict())
    state["pos_embed"] = videomae_table(8, 64)
    path = tmp_path / "with_table.pth"
    torch.save(state, path)
    report = load_checkpoint(build("video_vit"), path)
    assert "pos_embed" in report.unused
    state["pos_embed"] = torch.randn(1, 8, 64)
    torch.save(state, path)
    with pytest.raises(AdaptError, match="learned position table"):
        load_checkpoint(build("video_vit"), path)


# --------------------------------------------------------------------------- vit_jax npz


def test_jax_npz_checkpoint(tmp_path: Path) -> None:
    source = build("image_vit", num_classes=7, seed=1)
    path = tmp_path / "ViT-B_16.npz"
    np.savez(path, **vit_jax_arrays(source))
    target = build("image_vit", num_classes=7, seed=2)
    report = load_checkpoint(target, path)
    assert report.format == "jax-npz"
    assert not report.missing
    assert set(report.unused) == {"pre_logits/kernel", "pre_logits/bias"}
    x = batch_for(source)
    with torch.no_grad():
        assert _same(target(x), source(x))


def test_jax_npz_detected_from_content_not_name(tmp_path: Path) -> None:
    source = build("image_vit", num_classes=7, seed=1)
    path = tmp_path / "weights.pth"
    with path.open("wb") as handle:
        np.savez(handle, **vit_jax_arrays(source))
    target = build("image_vit", num_classes=3, seed=2, img_size=48)
    report = load_checkpoint(target, path)
    assert report.format == "jax-npz"
    assert report.missing == ["head.weight", "head.bias"]
    assert any(r.startswith("pos_embed") for r in report.resampled)


# --------------------------------------------------------------------------- Swin


def test_swin_state_dict(tmp_path: Path) -> None:
    source = build("swin", num_classes=4, seed=1)
    path = tmp_path / "swin.safetensors"
    save_file(source.state_dict(), str(path))
    target = build("swin", num_classes=4, seed=2)
    report = load_checkpoint(target, path)
    assert not report.missing and not report.unused
    x = batch_for(source)
    with torch.no_grad():
        assert _same(target(x), source(x))


# --------------------------------------------------------------------------- refusals


def test_missing_backbone_weight_is_an_error(tmp_path: Path) -> None:
    state = build("image_vit").state_dict()
    del state["blocks.1.mlp.fc2.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(AdaptError, match="1 backbone weights missing .blocks.1.mlp.fc2.weight") as info:
        load_checkpoint(build("image_vit"), path)
    assert "\n" not in str(info.value)


def test_wrong_architecture_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bigger.pth"
    torch.save(build("image_vit", embed_dim=96, num_heads=3).state_dict(), path)
    with pytest.raises(AdaptError, match="of another shape"):
        load_checkpoint(build("image_vit"), path)


def test_unread_weight_of_an_existing_module_is_an_error(tmp_path: Path) -> None:
    state = build("image_vit").state_dict()
    state["blocks.0.gamma_1"] = torch.ones(64)  # layer scale the model does not have
    path = tmp_path / "layerscale.pth"
    torch.save(state, path)
    with pytest.raises(AdaptError, match="cannot take .blocks.0.gamma_1"):
        load_checkpoint(build("image_vit"), path)
    report = load_checkpoint(build("image_vit"), path, strict_backbone=False)
    assert "blocks.0.gamma_1" in report.unused


def test_video_checkpoint_into_image_model_refused(tmp_path: Path) -> None:
    path = tmp_path / "video.pth"
    torch.save(build("video_vit").state_dict(), path)
    with pytest.raises(AdaptError, match="video model"):
        load_checkpoint(build("image_vit"), path)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / "evil.pth"
    torch.save({"model": build("image_vit").state_dict(), "extra": payload}, path)
    with pytest.raises(AdaptError, match="refusing to load .*system") as info:
        load_checkpoint(build("image_vit"), path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_legacy_pickle_with_unknown_global_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / "evil_legacy.pth"
    torch.save({"extra": payload}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(AdaptError, match="refusing to load"):
        load_checkpoint(build("image_vit"), path)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(AdaptError, match="not a safetensors, torch or .npz checkpoint"):
        load_checkpoint(build("image_vit"), path)
    with pytest.raises(AdaptError, match="not found"):
        load_checkpoint(build("image_vit"), tmp_path / "absent.pth")


def test_plain_pickle_is_not_a_checkpoint(tmp_path: Path) -> None:
    """A plain pickle (not written by torch.save) is refused with one line, never unpickled freely."""
    path = tmp_path / "plain.pkl"
    with path.open("wb") as handle:
        pickle.dump({"a": 1}, handle, protocol=2)
    with pytest.raises(AdaptError, match="could not read .* as a torch checkpoint"):
        load_checkpoint(build("image_vit"), path)


def test_swin_original_repository_checkpoint(tmp_path: Path) -> None:
    from tests.models.original_layouts import swin_original_state

    source = build("swin", num_classes=4, seed=1)
    path = tmp_path / "swin_base_patch4_window7_224_22k.pth"
    torch.save({"model": swin_original_state(source)}, path)
    target = build("swin", num_classes=4, seed=2)
    report = load_checkpoint(target, path)
    assert not report.missing
    x = batch_for(source)
    with torch.no_grad():
        assert _same(target(x), source(x))
