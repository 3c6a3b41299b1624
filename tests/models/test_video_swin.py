"""Video Swin (``swin3d_t``): the official checkpoint layout, methods, counts and merged export.

The official release (SwinTransformer/Video-Swin-Transformer, mmaction) stores
``{"meta": ..., "state_dict": {"backbone.<key>": ..., "cls_head.fc_cls.*": ...}}`` with the
backbone in its own names: ``layers.I.blocks.J.{norm1, attn.{relative_position_bias_table,
relative_position_index, qkv, proj}, norm2, mlp.fc1, mlp.fc2}``, ``layers.I.downsample.{reduction,
norm}``, ``patch_embed.{proj, norm}`` and ``norm``. The writer below lists those names from the
architecture (not from adaptcli's converter) together with torchvision's name for each tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torchvision.models.video import swin3d_t as torchvision_swin3d_t
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.models.checkpoints import load_checkpoint
from tests.engine.conftest import TINY, video_shards  # noqa: F401  (fixture)

runner = CliRunner()
# 28 px: a 7 x 7 token grid fills one 7 x 7 window exactly, so no window is padded (see docs/backbones.md:
# padded tokens see the bias ARC folds into qkv, so merging is exact only without padding).
VIDEO = ["--model", "swin3d_t", "--set", "model.num_frames=4", "--set", "model.img_size=28"]
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2"]
DEPTHS, HEADS, WIDTHS, WINDOW = (2, 2, 6, 2), (3, 6, 12, 24), (96, 192, 384, 768), (8, 7, 7)


def official_index(window: tuple[int, int, int]) -> torch.Tensor:
    """``WindowAttention3D.relative_position_index`` as the official code computes it."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    for axis in range(3):
        rel[:, :, axis] += window[axis] - 1
    rel[:, :, 0] *= (2 * window[1] - 1) * (2 * window[2] - 1)
    rel[:, :, 1] *= 2 * window[2] - 1
    return rel.sum(-1)


def official_swin_t(seed: int, window: tuple[int, int, int] = WINDOW) -> tuple[dict, dict]:
    """``(official checkpoint dict, the same tensors in torchvision's names)`` with random values."""
    generator = torch.Generator().manual_seed(seed)
    official: dict[str, torch.Tensor] = {}
    torchvision: dict[str, torch.Tensor] = {}

    def put(official_key: str, torchvision_key: str, *shape: int) -> None:
        value = torch.randn(*shape, generator=generator) * 0.05
        official[f"backbone.{official_key}"] = value
        if torchvision_key:
            torchvision[torchvision_key] = value

    put("patch_embed.proj.weight", "patch_embed.proj.weight", 96, 3, 2, 4, 4)
    put("patch_embed.proj.bias", "patch_embed.proj.bias", 96)
    put("patch_embed.norm.weight", "patch_embed.norm.weight", 96)
    put("patch_embed.norm.bias", "patch_embed.norm.bias", 96)
    rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
    for stage, (depth, heads, dim) in enumerate(zip(DEPTHS, HEADS, WIDTHS)):
        for block in range(depth):
            old, new = f"layers.{stage}.blocks.{block}", f"features.{2 * stage}.{block}"
            for norm in ("norm1", "norm2"):
                put(f"{old}.{norm}.weight", f"{new}.{norm}.weight", dim)
                put(f"{old}.{norm}.bias", f"{new}.{norm}.bias", dim)
            put(f"{old}.attn.relative_position_bias_table", f"{new}.attn.relative_position_bias_table", rows, heads)
            official[f"backbone.{old}.attn.relative_position_index"] = official_index(window)
            put(f"{old}.attn.qkv.weight", f"{new}.attn.qkv.weight", 3 * dim, dim)
            put(f"{old}.attn.qkv.bias", f"{new}.attn.qkv.bias", 3 * dim)
            put(f"{old}.attn.proj.weight", f"{new}.attn.proj.weight", dim, dim)
            put(f"{old}.attn.proj.bias", f"{new}.attn.proj.bias", dim)
            put(f"{old}.mlp.fc1.weight", f"{new}.mlp.0.weight", 4 * dim, dim)
            put(f"{old}.mlp.fc1.bias", f"{new}.mlp.0.bias", 4 * dim)
            put(f"{old}.mlp.fc2.weight", f"{new}.mlp.3.weight", dim, 4 * dim)
            put(f"{old}.mlp.fc2.bias", f"{new}.mlp.3.bias", dim)
        if stage < 3:
            put(f"layers.{stage}.downsample.reduction.weight", f"features.{2 * stage + 1}.reduction.weight",
                2 * dim, 4 * dim)
            put(f"layers.{stage}.downsample.norm.weight", f"features.{2 * stage + 1}.norm.weight", 4 * dim)
            put(f"layers.{stage}.downsample.norm.bias", f"features.{2 * stage + 1}.norm.bias", 4 * dim)
    put("norm.weight", "norm.weight", 768)
    put("norm.bias", "norm.bias", 768)
    checkpoint = {
        "meta": {"epoch": 30, "mmaction_version": "0.15.0", "config": "swin_tiny_patch244_window877.py"},
        "state_dict": {**official,
                       "cls_head.fc_cls.weight": torch.randn(400, 768, generator=generator),
                       "cls_head.fc_cls.bias": torch.randn(400, generator=generator)},
    }
    return checkpoint, torchvision


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 4, 28, 28, generator=torch.Generator().manual_seed(seed))


def swin(num_classes: int = 5, seed: int = 1):
    import timm

    import adaptcli.models.architectures  # noqa: F401

    torch.manual_seed(seed)
    return timm.create_model("swin3d_t", num_classes=num_classes).eval()


def test_official_checkpoint_lands_every_tensor(tmp_path: Path) -> None:
    checkpoint, expected = official_swin_t(seed=3)
    path = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save(checkpoint, path)

    result = runner.invoke(app, ["inspect-params", *VIDEO, "--method", "linear", "--num-classes", "5",
                                 "--checkpoint", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert "video-swin" in result.stderr and "cls_head" in result.stderr

    model = swin()
    report = load_checkpoint(model, path)
    assert report.format == "video-swin"
    assert sorted(report.unused) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert report.missing == ["head.weight", "head.bias"]
    reference = torchvision_swin3d_t(num_classes=5).eval()
    missing, unexpected = reference.load_state_dict(expected, strict=False)
    assert not unexpected and all(k.startswith("head.") or k.endswith("relative_position_index") for k in missing)
    state, ref_state = model.state_dict(), reference.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    # The official index and torchvision's are the same function of the window.
    assert torch.equal(ref_state["features.0.0.attn.relative_position_index"], official_index(WINDOW))
    with torch.no_grad():
        x = clip()
        # fused attention (adaptcli) against torchvision's explicit one: equal up to float rounding
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                                   reference.avgpool(reference.norm(reference.features(reference.patch_embed(x)))
                                                     .permute(0, 4, 1, 2, 3)).flatten(1), atol=1e-5, rtol=0)


def test_torchvision_state_dict_and_another_window(tmp_path: Path) -> None:
    source = torchvision_swin3d_t(num_classes=5).eval()
    path = tmp_path / "tv.pth"
    torch.save(source.state_dict(), path)
    model = swin(seed=2)
    assert load_checkpoint(model, path).format == "torchvision"
    with torch.no_grad():
        torch.testing.assert_close(model(clip()), source(clip()), atol=1e-5, rtol=0)  # fused vs explicit attention

    other = tmp_path / "window2.pth"
    torch.save(official_swin_t(seed=0, window=(2, 7, 7))[0], other)
    result = runner.invoke(app, ["inspect-params", *VIDEO, "--method", "linear", "--num-classes", "5",
                                 "--checkpoint", str(other)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "8x7x7 window" in lines[0] and "another window size" in lines[0]


def inspect(method: str, *extra: str) -> dict:
    result = runner.invoke(app, ["inspect-params", *VIDEO, "--method", method, "--num-classes", "10",
                                 "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_inspect_params_exact_counts() -> None:
    blocks = [(n, d) for n, d in zip(DEPTHS, WIDTHS)]
    adaptformer = inspect("adaptformer")
    assert adaptformer["method_params"] == sum(n * (2 * 64 * d + 64 + d) for n, d in blocks)
    arc = inspect("arc")
    assert arc["method_params"] == 2 * 50 * sum(WIDTHS) + 2 * sum(n * (50 + d) for n, d in blocks)
    # torchvision's swin3d_t: 28,158,070 parameters with its 400-class head.
    assert arc["backbone_params"] == 28_158_070 - (768 * 400 + 400)
    assert arc["head_params"] == 768 * 10 + 10
    refused = runner.invoke(app, ["inspect-params", *VIDEO, "--method", "vpt_deep", "--num-classes", "10"])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "Swin" in refused.stderr


def finetune(data: Path, out: Path, method: str, *extra: str) -> dict:
    result = runner.invoke(app, ["finetune", "--method", method, "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), *TINY, *VIDEO, *SHORT, *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("method, extra", [
    ("adaptformer", ["--set", "method.mid_dim=8"]),
    ("arc", ["--set", "method.dim=4"]),
    ("linear", []),
    ("full", []),
])
def test_finetune_and_merged_export_into_plain_torchvision(video_shards, tmp_path, method, extra) -> None:
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = tmp_path / method
    summary = finetune(video_shards, run, method, *extra)
    assert summary["steps"] == 2
    if method == "arc":  # one shared projection per stage and side
        assert summary["method_params"] == 2 * 4 * sum(WIDTHS) + 2 * sum(n * (4 + d) for n, d in zip(DEPTHS, WIDTHS))
    out = tmp_path / f"{method}.safetensors"
    result = runner.invoke(app, ["export", "--run", str(run), "--merge", "--out", str(out)])
    if method == "adaptformer":
        assert result.exit_code == 2 and "cannot be merged" in result.output
        return
    assert result.exit_code == 0, result.output
    plain = torchvision_swin3d_t(num_classes=2).eval()
    plain.load_state_dict(load_file(str(out)), strict=True)
    model = load_run_model(RunDir(run)).model
    with torch.no_grad():
        assert float((model.eval()(clip()) - plain(clip())).abs().max()) <= 1e-4
