"""ARC's ``method.swin_placement``: mergeable (default) or official (MLP side before norm2, as released)."""

from __future__ import annotations

import copy

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.methods.apply import apply_method, merge_method
from adaptcli.methods.arc.config import ArcOptions
from adaptcli.models.recompute import apply_recompute
from tests.engine.conftest import TINY, image_shards  # noqa: F401  (session fixture)
from tests.models.backbone_zoo import batch_for, build, randomise

runner = CliRunner()
OFFICIAL = ArcOptions(swin_placement="official")


def adapted(options: ArcOptions | None = None, method: str = "arc", kind: str = "swin"):
    """A tiny model with ``method`` applied, in eval mode (the adapter's dropout off), and its info."""
    model = build(kind)
    info = apply_method(model, method, options)
    return model.eval(), info


def trainable(model: torch.nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def test_official_at_identity_init_is_the_plain_model():
    plain = build("swin")
    model, info = adapted(ArcOptions(swin_placement="official", scale_init="zero"))
    assert not info.mergeable
    x = batch_for(model)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


def test_official_mlp_adapter_rewrites_the_stream_before_norm2():
    """The default init (MLP-side scale xavier) is not the identity: check the placement by hooking."""
    model, _ = adapted(OFFICIAL)
    block = model.layers[1].blocks[1]
    assert type(block.norm2) is torch.nn.LayerNorm and hasattr(block, "arc_stream")
    seen: dict[str, torch.Tensor] = {}
    block.arc_stream.register_forward_hook(lambda m, i, o: seen.update(stream_in=i[0], stream=o))
    block.norm2.register_forward_pre_hook(lambda m, i: seen.update(norm_in=i[0]))
    block.register_forward_hook(lambda m, i, o: seen.update(out=o))
    with torch.no_grad():
        model(batch_for(model))
        assert not torch.allclose(seen["stream"], seen["stream_in"])  # not the identity at init
        assert torch.equal(seen["norm_in"], seen["stream"])  # norm2 reads the adapted stream
        # ... and so does the skip connection: out = A(x) + MLP(norm2(A(x))).
        expected = seen["stream"] + block.mlp(block.norm2(seen["stream"]))
        assert torch.allclose(seen["out"], expected, atol=1e-6)
    # The attention side stays after norm1, as in the released code and the mergeable placement.
    assert type(block.norm1).__name__ == "ArcAdapter"


def test_official_on_video_swin_uses_torchvision_blocks_the_same_way():
    import timm

    import adaptcli.models.architectures  # noqa: F401  (registers swin3d_t)

    torch.manual_seed(0)
    plain = timm.create_model("swin3d_t", num_classes=3).eval()
    torch.manual_seed(0)
    model = timm.create_model("swin3d_t", num_classes=3)
    apply_method(model, "arc", ArcOptions(swin_placement="official", scale_init="zero"))
    model.eval()
    x = torch.randn(1, 3, 4, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
        block = model.features[0][0]
        torch.nn.init.normal_(block.arc_stream.scale, std=0.5)
        torch.nn.init.normal_(block.arc_stream.bias, std=0.5)
        h = torch.randn(1, 2, 7, 7, 96)
        mid = h + block.attn(block.norm1(h))
        stream = block.arc_stream(mid)
        assert not torch.allclose(stream, mid)
        assert torch.allclose(block(h), stream + block.mlp(block.norm2(stream)), atol=1e-6)


def test_placements_train_the_same_number_of_parameters():
    mergeable, official = adapted()[0], adapted(OFFICIAL)[0]
    assert sum(trainable(mergeable).values()) == sum(trainable(official).values())
    renamed = {n.replace(".norm2.", ".arc_stream."): c for n, c in trainable(mergeable).items()}
    assert renamed == trainable(official)


def test_official_keeps_its_forward_under_recompute():
    """Recompute runs ``type(block).forward``: the official block's own class keeps the placement."""
    model, _ = adapted(OFFICIAL)
    x = batch_for(model)
    with torch.no_grad():
        before = model(x)
    assert apply_recompute(model, "all") == 4
    after = model(x)  # grad enabled: every block runs under checkpoint
    assert after.requires_grad and torch.equal(after.detach(), before)


def test_mergeable_placement_still_merges_exactly_on_swin():
    model, info = adapted()
    assert info.mergeable
    randomise(model, [n for n in trainable(model) if "arc" in n or ".norm" in n])
    x = batch_for(model)
    with torch.no_grad():
        before = model(x)
        merge_method(model, info)
        assert torch.allclose(model(x), before, atol=1e-5)
    assert set(model.state_dict()) == set(build("swin").state_dict())


def test_official_merge_is_refused_by_the_method_too():
    model, info = adapted(OFFICIAL)
    with pytest.raises(NotMergeableError, match="swin_placement=official cannot be merged.*--adapter-only"):
        merge_method(copy.deepcopy(model), info)


def test_arc_att_official_on_swin_has_no_mlp_side_and_stays_mergeable():
    model, info = adapted(OFFICIAL, method="arc_att")
    assert info.mergeable
    assert not any(hasattr(block, "arc_stream") for block in model.modules())


def test_official_on_a_vit_is_refused():
    with pytest.raises(UnsupportedModelError, match="Swin backbones only, not VisionTransformer"):
        adapted(OFFICIAL, kind="image_vit")


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_an_invalid_placement_is_a_one_line_config_error():
    result = runner.invoke(app, ["inspect-params", "--model", "swin_tiny_patch4_window7_224", "--method", "arc",
                                 "--num-classes", "3", "--set", "method.swin_placement=released"])
    assert "method.swin_placement: expected one of 'mergeable' | 'official'" in one_line(result)


def test_cli_export_merge_of_an_official_run_is_refused_in_one_line(image_shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    result = runner.invoke(app, [
        "finetune", "--method", "arc", "--recipe", "quick", "--data", str(image_shards), "--out", str(run),
        "--model", "swin_tiny_patch4_window7_224", *TINY, "--set", "method.dim=4",
        "--set", "method.swin_placement=official", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "model.safetensors"
    result = runner.invoke(app, ["export", "--run", str(run), "--merge", "--out", str(out)])
    line = one_line(result)
    assert "swin_placement=official cannot be merged" in line and "--full or --adapter-only" in line
    assert not out.exists()
    for mode in ("full", "adapter-only"):  # both check themselves against the run's model
        target = tmp_path / f"{mode}.safetensors"
        result = runner.invoke(app, ["export", "--run", str(run), f"--{mode}", "--out", str(target)])
        assert result.exit_code == 0, result.output


def adapter_dropouts(model: torch.nn.Module) -> set[float]:
    from adaptcli.methods.arc.method import ArcRecompose

    return {m.dropout.p for m in model.modules() if isinstance(m, ArcRecompose)}


def test_official_placement_trains_with_the_released_swin_dropout():
    """DavidYanAnDe/ARC Model/ARC_swin_b.py line 256: SwinTransformerBlock(..., adp_drop = 0.5), lines 326-327
    nn.Dropout(adp_drop) on both sides; BasicLayer (lines 479-485) passes no adp_drop."""
    model, _ = adapted(OFFICIAL)
    assert adapter_dropouts(model) == {0.5}
    mergeable, _ = adapted()
    assert adapter_dropouts(mergeable) == {0.1}  # ARC's --adapt_drop default elsewhere
    chosen, _ = adapted(ArcOptions(swin_placement="official", dropout=0.1))
    assert adapter_dropouts(chosen) == {0.1}
