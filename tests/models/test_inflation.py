"""Image ViT weights drive the video ViT: a static clip embeds like the image, tubelet by tubelet."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from adaptcli.models.checkpoints import load_checkpoint
from adaptcli.models.inflate import inflate_patch_kernel
from tests.models.backbone_zoo import build


def test_inflated_kernel_shape_and_sum() -> None:
    weight = torch.randn(8, 3, 16, 16)
    inflated = inflate_patch_kernel(weight, 4)
    assert inflated.shape == (8, 3, 4, 16, 16)
    assert torch.allclose(inflated.sum(dim=2), weight, atol=1e-6)


def test_static_clip_gives_the_image_patch_embedding(tmp_path: Path) -> None:
    image = build("image_vit", seed=1)
    path = tmp_path / "in21k.safetensors"
    save_file(image.state_dict(), str(path))
    video = build("video_vit", seed=2)  # 4 frames, tubelet 2: 2 x 2 x 2 tubelets
    report = load_checkpoint(video, path)
    assert "inflated" in report.format
    assert {"cls_token", "pos_embed"} <= set(report.unused)

    # float64: the identity is exact up to rounding; float32 reductions differ in order (~1e-6)
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        image_embed, video_embed = image.patch_embed.to(dtype), video.patch_embed.to(dtype)
        frame = torch.randn(2, 3, 32, 32, dtype=dtype)
        clip = frame.unsqueeze(2).expand(-1, -1, video.num_frames, -1, -1)  # B x C x T x H x W, static
        with torch.no_grad():
            image_tokens = image_embed(frame)  # B x (H/p * W/p) x D
            video_tokens = video_embed(clip)  # B x (T/t * H/p * W/p) x D, time-major
        per_tubelet = video_tokens.reshape(2, video.patch_embed.grid_size[0], -1, 64)
        for t in range(per_tubelet.shape[1]):
            assert torch.allclose(per_tubelet[:, t], image_tokens, atol=tolerance, rtol=0)
    # every other backbone weight carried over by name
    for name, value in image.blocks.state_dict().items():
        assert torch.equal(video.blocks.state_dict()[name], value)


def test_imagenet21k_npz_drives_the_video_model(tmp_path: Path) -> None:
    """AdaptFormer Table 4: an ImageNet-21k JAX checkpoint into the video ViT."""
    import numpy as np

    from tests.models.original_layouts import vit_jax_arrays

    image = build("image_vit", seed=1)
    path = tmp_path / "ViT-B_16.npz"
    np.savez(path, **vit_jax_arrays(image))
    video = build("video_vit", num_classes=3, seed=2)  # 21k head: another size
    report = load_checkpoint(video, path)
    assert report.format == "jax-npz, image weights inflated to video"
    assert set(report.missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    expected = inflate_patch_kernel(image.patch_embed.proj.weight.detach(), 2)
    assert torch.equal(video.patch_embed.proj.weight, expected)
