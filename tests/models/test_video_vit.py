"""The video ViT: VideoMAE layout, timm registration, sizes from the configuration."""

from __future__ import annotations

import timm
import torch

from adaptcli.models.config import ModelConfig
from adaptcli.models.build import create_backbone
from adaptcli.models.video_vit import VideoVisionTransformer, sinusoid_table
from tests.models.backbone_zoo import batch_for, build
from tests.models.original_layouts import videomae_table


def test_registered_names_and_pretrained_cfg() -> None:
    for name in ("video_vit_small_patch16", "video_vit_base_patch16", "video_vit_large_patch16", "video_vit_test"):
        assert timm.is_model(name)
        cfg = timm.get_pretrained_cfg(name)
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
        assert not cfg.has_weights
    model = build("video_vit")
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)


def test_layout() -> None:
    model = build("video_vit")
    assert isinstance(model, VideoVisionTransformer)
    assert model.patch_embed.proj.kernel_size == (2, 16, 16) and model.patch_embed.proj.stride == (2, 16, 16)
    assert model.num_prefix_tokens == 0 and not hasattr(model, "cls_token")
    assert "pos_embed" not in model.state_dict()  # a fixed buffer, recomputed, never saved
    assert not any("pos_embed" in n for n, _ in model.named_parameters())
    assert model.no_weight_decay() == set()
    attn = model.blocks[0].attn
    assert attn.qkv.bias is not None and attn.qkv.bias.shape == (3 * 64,)
    assert isinstance(model.fc_norm, torch.nn.LayerNorm) and isinstance(model.norm, torch.nn.Identity)
    x = batch_for(model)
    assert x.shape == (2, 3, 4, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 2 * 2 * 2, 64)
        assert model(x).shape == (2, 5)
        pooled = model.forward_head(tokens, pre_logits=True)
        assert torch.allclose(pooled, model.fc_norm(tokens.mean(1)))


def test_sinusoid_table_is_videomae_s() -> None:
    assert torch.allclose(sinusoid_table(1568, 64), videomae_table(1568, 64), atol=1e-6, rtol=0)


def test_sizes_from_model_config() -> None:
    model = create_backbone(ModelConfig(name="video_vit_test", img_size=48, num_frames=8), 3)
    assert model.patch_embed.grid_size == (4, 3, 3)
    assert model.pos_embed.shape == (1, 36, 64)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 48, 48)).shape == (1, 3)
        # other clip sizes work too: the table follows the token count
        assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)


def test_classifier_interface_and_grad_checkpointing() -> None:
    model = build("video_vit")
    model.reset_classifier(9)
    assert model.get_classifier().out_features == 9
    x = batch_for(model)
    with torch.no_grad():
        plain = model(x)
    model.set_grad_checkpointing(True)
    model.train()
    out = model(x)
    out.sum().backward()
    assert torch.allclose(out, plain, atol=1e-6)
    assert model.blocks[0].attn.qkv.weight.grad is not None
