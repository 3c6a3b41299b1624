"""ZeroI2V against its official formulation (MCG-NJU/ZeroI2V), in float64 with weights moved from init.

The references below are written here from the official code's equations, independently of
adaptcli's implementation:
- ``official_shift``: ``TemporalShift.forward`` (``mmaction/models/common/stdha.py``, ``divide_head=False``)
  on the ``(HW+1) x (B*T) x C`` layout of ``nn.MultiheadAttention``, with the long shift of
  ``stdha_long.py`` (``shift2_div``: two frames left, then two frames right), applied to k and v only;
- ``official_block``: ``ResidualAttentionBlock_ZeroI2V.forward`` (``vit_zero_clip.py``,
  ``num_tadapter=2``) with ``LinearAdapter`` and STDHA's attention, in the LND layout;
- ``official_forward``: ``ViT_Zero_CLIP.forward`` (``vit_zero_clip.py``) with its ``temporal_embedding``, then
  the ``I3DHead`` (average over frames, linear), on a timm ViT with CLIP's ``ln_pre`` (``pre_norm=True``).
"""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

from adaptcli.methods import apply_method, merge_method
from adaptcli.methods.apply import frozen_backbone_state
from adaptcli.methods.zeroi2v.method import AdaptedLinear
from adaptcli.models.frame_shift import ShiftedQkv, attach_frame_shift, temporal_head_shift

DIM, HEADS, FRAMES = 64, 4, 4
OPTIONS = dict(shift_div=4, offsets=[1, -1, 2, -2], scale=0.5, dropout=0.0)


def official_shift(feat: torch.Tensor, num_frames: int, fold_div: int, long_div: int) -> torch.Tensor:
    """``TemporalShift`` (divide_head=False) + stdha_long's two-frame shifts, on ``N x BT x C``."""
    n, bt, c = feat.shape
    feat = feat.view(n, bt // num_frames, num_frames, c)
    out = feat.clone()
    fold = c // fold_div
    out[:, :, 1:, :fold] = feat[:, :, :-1, :fold]
    out[:, :, :-1, fold:2 * fold] = feat[:, :, 1:, fold:2 * fold]
    if long_div > 0:
        long_fold = c // long_div
        out[:, :, 2:, 2 * fold:2 * fold + long_fold] = feat[:, :, :-2, 2 * fold:2 * fold + long_fold]
        out[:, :, :-2, 2 * fold + long_fold:2 * fold + 2 * long_fold] = \
            feat[:, :, 2:, 2 * fold + long_fold:2 * fold + 2 * long_fold]
    return out.view(n, bt, c)


def official_adapter(x, fc1, fc2, scale):
    return x + F.linear(F.linear(x, fc1.weight, fc1.bias), fc2.weight, fc2.bias) * scale


def official_block(x, block, adapters, scale, num_frames, fold_div, long_div):
    """``x`` is ``N x BT x D``; ``adapters`` maps T_in/S/M_in/M_out to (fc1, fc2); weights from ``block``."""
    def adapt(name, h):
        fc1, fc2 = adapters[name]
        return official_adapter(h, fc1, fc2, scale)

    def attention(h):
        n, bt, d = h.shape
        w, b = block.attn.qkv.base_layer.weight, block.attn.qkv.base_layer.bias
        q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
        k = official_shift(k, num_frames, fold_div, long_div)
        v = official_shift(v, num_frames, fold_div, long_div)
        head_dim = d // HEADS
        q, k, v = (t.contiguous().view(n, bt * HEADS, head_dim).transpose(0, 1) for t in (q, k, v))
        weights = torch.softmax((q / head_dim ** 0.5) @ k.transpose(1, 2), dim=-1)
        out = (weights @ v).transpose(0, 1).contiguous().view(n, bt, d)
        proj = block.attn.proj.base_layer
        return F.linear(out, proj.weight, proj.bias)

    def mlp(h):
        fc1, fc2 = block.mlp.fc1.base_layer, block.mlp.fc2.base_layer
        return F.linear(F.gelu(F.linear(h, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)

    x = x + adapt("S", attention(adapt("T_in", block.norm1(x))))
    return x + adapt("M_out", mlp(adapt("M_in", block.norm2(x))))


def official_forward(x, model, scale, fold_div, long_div):
    """``ViT_Zero_CLIP.forward`` + ``I3DHead`` on ``B x C x T x H x W``; official names bound to the timm weights."""
    conv1 = model.patch_embed.proj
    class_embedding, positional_embedding = model.cls_token.view(-1), model.pos_embed[0]
    temporal_embedding = model.temporal_embedding
    ln_pre, ln_post, fc_cls = model.norm_pre, model.norm, model.head
    b, c, t, h, w = x.shape
    x = x.transpose(1, 2).reshape(b * t, c, h, w)  # 'b c t h w -> (b t) c h w'
    x = F.conv2d(x, conv1.weight, conv1.bias, stride=conv1.stride)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype), x], dim=1)
    x = x + positional_embedding
    n, d = x.shape[1], x.shape[2]
    x = x.view(b, t, n, d).transpose(1, 2).reshape(b * n, t, d)  # '(b t) n d -> (b n) t d'
    x = x + temporal_embedding
    x = x.view(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)  # '(b n) t d -> (b t) n d'
    x = F.layer_norm(x, (d,), ln_pre.weight, ln_pre.bias, ln_pre.eps)
    x = x.permute(1, 0, 2)  # NLD -> LND
    for block in model.blocks:
        adapters = {"T_in": block.attn.qkv.adapter_in, "S": block.attn.proj.adapter_out,
                    "M_in": block.mlp.fc1.adapter_in, "M_out": block.mlp.fc2.adapter_out}
        x = official_block(x, block, {k: (a.fc1, a.fc2) for k, a in adapters.items()}, scale, t, fold_div, long_div)
    x = x.permute(1, 0, 2)[:, 0]
    x = F.layer_norm(x, (d,), ln_post.weight, ln_post.bias, ln_post.eps)
    x = x.view(b, t, d).mean(dim=1)  # I3DHead: average over T (and the 1 x 1 space), then fc_cls
    return F.linear(x, fc_cls.weight, fc_cls.bias)


def tiny_vit(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, embed_dim=DIM, depth=2,
                             num_heads=HEADS, num_classes=5, **kwargs).double().eval()


def adapted(seed: int = 0, temporal_embedding: bool = False, **kwargs):
    model = tiny_vit(seed, **kwargs)
    info = apply_method(model, "zeroi2v", dict_options({**OPTIONS, "temporal_embedding": temporal_embedding}),
                        num_frames=FRAMES)
    torch.manual_seed(seed + 1)
    with torch.no_grad():  # move every trained weight away from its init (fc2 starts at zero)
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    return model.eval(), info


def dict_options(values: dict):
    from adaptcli.methods.zeroi2v.config import ZeroI2VOptions
    return ZeroI2VOptions(**values)


def test_shift_equals_official():
    torch.manual_seed(0)
    batch, tokens = 2, 5
    qkv = torch.randn(batch * FRAMES, tokens, 3 * DIM, dtype=torch.float64)
    ours = temporal_head_shift(qkv, FRAMES, DIM // 4, [1, -1, 2, -2])
    q, k, v = qkv.transpose(0, 1).chunk(3, dim=-1)  # to the official N x BT x C layout
    expected = torch.cat([q, official_shift(k, FRAMES, 4, 4), official_shift(v, FRAMES, 4, 4)], dim=-1)
    assert torch.equal(ours, expected.transpose(0, 1))
    assert not torch.equal(ours, qkv)  # the shift moved something


def test_block_equals_official():
    model, _ = adapted()
    block = model.blocks[0]
    adapters = {"T_in": block.attn.qkv.adapter_in, "S": block.attn.proj.adapter_out,
                "M_in": block.mlp.fc1.adapter_in, "M_out": block.mlp.fc2.adapter_out}
    adapters = {k: (a.fc1, a.fc2) for k, a in adapters.items()}
    block.attn.qkv.base_layer.num_frames = FRAMES
    torch.manual_seed(3)
    x = torch.randn(2 * FRAMES, 5, DIM, dtype=torch.float64)  # (B*T) x N x D, timm's layout
    with torch.no_grad():
        ours = block(x)
        expected = official_block(x.transpose(0, 1), block, adapters, 0.5, FRAMES, 4, 4).transpose(0, 1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    no_shift = copy.deepcopy(block)
    no_shift.attn.qkv.base_layer.offsets = ()
    assert not torch.allclose(no_shift(x), ours)  # the shift changes the block's output


def test_clip_forward_averages_frames():
    model, _ = adapted()
    torch.manual_seed(4)
    clip = torch.randn(2, 3, FRAMES, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        logits = model(clip)
    assert logits.shape == (2, 5)
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64)  # an image is a one-frame clip
    with torch.no_grad():
        torch.testing.assert_close(model(image), model(image.unsqueeze(2)), rtol=0, atol=0)


def test_merge_is_exact_and_leaves_only_the_shift():
    model, info = adapted()
    assert info.mergeable
    torch.manual_seed(5)
    clip = torch.randn(2, 3, FRAMES, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(clip)
        merged = merge_method(copy.deepcopy(model), info)
        assert not any(isinstance(m, AdaptedLinear) for m in merged.modules())
        torch.testing.assert_close(merged(clip), expected, rtol=0, atol=1e-12)
    # The merged weights are the image ViT's keys and shapes; loaded into a fresh image ViT with the
    # shift attached, the clip's logits are the adapted model's.
    plain = tiny_vit(seed=9)
    assert set(merged.state_dict()) == set(plain.state_dict())
    plain.load_state_dict(merged.state_dict())
    attach_frame_shift(plain, OPTIONS["shift_div"], OPTIONS["offsets"])
    assert sum(isinstance(m, ShiftedQkv) for m in plain.modules()) == 2
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in tiny_vit().parameters())
    with torch.no_grad():
        torch.testing.assert_close(plain(clip), expected, rtol=0, atol=1e-12)


def test_trainable_parameters_are_adapters_and_head():
    model, info = adapted()
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    hidden = int(DIM * 0.25)
    per_adapter = DIM * hidden + hidden + hidden * DIM + DIM
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("head.", "fc_norm.")))
    assert sum(trainable.values()) == 2 * 4 * per_adapter + head
    assert all(".adapter_" in n or n.startswith(("head.", "fc_norm.")) for n in trainable)
    backbone = frozen_backbone_state(model, info)
    assert set(backbone) == {k for k in tiny_vit().state_dict() if not k.startswith("head.")}


@pytest.mark.parametrize("change, message", [({"shift_div": 3}, "not whole heads"), ({"shift_div": 8}, "not whole heads"),
                                             ({"shift_div": 2}, "need 8 heads, the model has 4")])
def test_groups_that_are_not_whole_heads_or_do_not_fit_are_refused(change, message):
    from adaptcli.errors import UnsupportedModelError
    with pytest.raises(UnsupportedModelError, match=message) as refused:
        apply_method(tiny_vit(), "zeroi2v", dict_options({**OPTIONS, **change}))
    assert "\n" not in str(refused.value)


def test_inspect_params_counts_the_flops_the_merge_removes():
    """``--flops``: the adapters cost 2 x (2 x D x D/4) FLOPs per token each while training; merged, the model
    costs exactly the image ViT on every frame (the shift is a memory move)."""
    import json

    from typer.testing import CliRunner

    from adaptcli.cli.app import app

    args = ["inspect-params", "--model", "test_vit", "--method", "zeroi2v", "--num-classes", "3", "--flops", "--json",
            "--set", "model.img_size=32", "--set", "model.num_frames=4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    flops = report["flops"]
    plain = timm.create_model("test_vit", img_size=32, num_classes=3)
    dim, depth, tokens = plain.embed_dim, len(plain.blocks), plain.patch_embed.num_patches + plain.num_prefix_tokens
    # 4 adapters per block, 4 frames, 2 matmuls of D x D/4 per token, 2 FLOPs per multiply-add
    adapters = 4 * depth * 4 * tokens * 2 * 2 * dim * int(dim * 0.25)
    assert flops["input"] == "1 x 3 x 4 x 32 x 32"
    assert flops["adapted"] - flops["backbone"] == adapters
    assert flops["merged"] == flops["backbone"] and flops["merged_extra"] == 0
    assert report["method_params"] == 4 * depth * (2 * dim * int(dim * 0.25) + int(dim * 0.25) + dim)

    table = CliRunner().invoke(app, [a for a in args if a != "--json"])
    assert table.exit_code == 0 and "merged extra" in table.output
    adaptformer = CliRunner().invoke(app, [*args[:4], "adaptformer", *args[5:]])
    assert json.loads(adaptformer.output)["flops"]["merged"] is None


def test_a_video_backbone_is_refused_in_one_line():
    from adaptcli.errors import UnsupportedModelError
    import adaptcli.models.architectures  # noqa: F401  (registers video_vit_test)

    with pytest.raises(UnsupportedModelError, match="already a video model") as refused:
        apply_method(timm.create_model("video_vit_test", num_classes=3), "zeroi2v")
    assert "\n" not in str(refused.value)


def test_video_shards_with_an_image_model_name_zeroi2v_as_a_fix():
    from adaptcli.errors import AdaptError
    from adaptcli.runs.build import check_modality

    with pytest.raises(AdaptError, match="--method zeroi2v"):
        check_modality(tiny_vit(), "video", "test_vit")
    model, _ = adapted()
    check_modality(model, "video", "test_vit")  # adapted, it takes clips
    with pytest.raises(AdaptError, match="the shards hold images but the method runs 'test_vit' on video frames"):
        check_modality(model, "image", "test_vit")


def test_temporal_embedding_starts_at_zero_and_trains_without_weight_decay():
    from adaptcli.engine.optim import parameter_groups

    model = tiny_vit(pre_norm=True)
    info = apply_method(model, "zeroi2v", dict_options({**OPTIONS, "temporal_embedding": True}), num_frames=FRAMES)
    table = model.temporal_embedding
    assert table.shape == (1, FRAMES, DIM) and table.requires_grad and not table.any()  # official: torch.zeros
    assert "temporal_embedding" in info.method_param_names and "temporal_embedding" in info.owned_prefixes
    assert model.frame_shift == {"shift_div": 4, "offsets": [1, -1, 2, -2], "temporal_embedding": FRAMES}
    no_decay = [group for group in parameter_groups(model, 0.05) if group["weight_decay"] == 0]
    assert any(p is table for group in no_decay for p in group["params"])  # official paramwise_cfg: decay_mult=0
    default = tiny_vit()
    apply_method(default, "zeroi2v", dict_options(OPTIONS), num_frames=FRAMES)
    assert not hasattr(default, "temporal_embedding") and "temporal_embedding" not in default.frame_shift


def test_forward_with_temporal_embedding_equals_official():
    model, _ = adapted(temporal_embedding=True, pre_norm=True)
    assert model.temporal_embedding.abs().min() > 0  # moved away from its zero init, every entry
    torch.manual_seed(6)
    clip = torch.randn(2, 3, FRAMES, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        ours = model(clip)
        torch.testing.assert_close(ours, official_forward(clip, model, 0.5, 4, 4), rtol=0, atol=1e-12)
        table = model.temporal_embedding.clone()
        model.temporal_embedding.zero_()
        assert not torch.allclose(model(clip), ours)  # the table is part of the forward
        model.temporal_embedding.copy_(table[:, torch.randperm(FRAMES)])
        assert not torch.allclose(model(clip), ours)  # row t goes to frame t


def test_merge_keeps_the_temporal_embedding_and_is_exact():
    model, info = adapted(temporal_embedding=True)
    torch.manual_seed(7)
    clip = torch.randn(2, 3, FRAMES, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(clip)
        merged = merge_method(copy.deepcopy(model), info)
        torch.testing.assert_close(merged(clip), expected, rtol=0, atol=1e-12)
        model.temporal_embedding.zero_()  # the copy's hook reads the copy's own table
        torch.testing.assert_close(merged(clip), expected, rtol=0, atol=1e-12)
    assert set(merged.state_dict()) == set(tiny_vit().state_dict()) | {"temporal_embedding"}
    plain = tiny_vit(seed=9)
    attach_frame_shift(plain, OPTIONS["shift_div"], OPTIONS["offsets"], temporal_embedding=FRAMES)
    plain.load_state_dict(merged.state_dict())  # strict: the image ViT's keys + the table
    extra = sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in tiny_vit().parameters())
    assert extra == FRAMES * DIM
    with torch.no_grad():
        torch.testing.assert_close(plain(clip), expected, rtol=0, atol=1e-12)
    backbone = frozen_backbone_state(model, info)
    assert set(backbone) == {k for k in tiny_vit().state_dict() if not k.startswith("head.")}


def test_trainable_parameters_with_temporal_embedding_add_t_by_d():
    model, _ = adapted(temporal_embedding=True)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    hidden = int(DIM * 0.25)
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("head.", "fc_norm.")))
    assert sum(trainable.values()) == 2 * 4 * (2 * DIM * hidden + hidden + DIM) + head + FRAMES * DIM
    assert trainable["temporal_embedding"] == FRAMES * DIM


def test_a_clip_of_another_length_is_refused_as_the_official_does():
    from adaptcli.errors import AdaptError
    from adaptcli.models.frame_shift import FrameCountError

    model, _ = adapted(temporal_embedding=True)
    for shape in ((1, 3, FRAMES - 1, 32, 32), (1, 3, FRAMES * 2, 32, 32), (1, 3, 32, 32)):
        with pytest.raises(FrameCountError, match=f"learned for clips of {FRAMES} frames") as refused:
            model(torch.zeros(shape, dtype=torch.float64))
        assert isinstance(refused.value, AdaptError) and "\n" not in str(refused.value)


def test_temporal_embedding_without_a_position_table_is_refused_in_one_line():
    from adaptcli.errors import UnsupportedModelError

    relpos = timm.create_model("vit_relpos_small_patch16_224", pretrained=False, img_size=32, embed_dim=DIM, depth=2,
                               num_heads=HEADS, num_classes=3)  # relative positions: no pos_embed, no norm_pre
    with pytest.raises(UnsupportedModelError, match="no such pair.*method.temporal_embedding=false") as refused:
        apply_method(relpos, "zeroi2v", dict_options({"temporal_embedding": True}), num_frames=FRAMES)
    assert "\n" not in str(refused.value)


def test_inspect_params_counts_the_table_and_its_additions():
    import json

    from typer.testing import CliRunner

    from adaptcli.cli.app import app

    args = ["inspect-params", "--model", "test_vit", "--method", "zeroi2v", "--num-classes", "3", "--flops", "--json",
            "--set", "model.img_size=32", "--set", "model.num_frames=4"]
    without = json.loads(CliRunner().invoke(app, args).output)
    result = CliRunner().invoke(app, [*args, "--set", "method.temporal_embedding=true"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    plain = timm.create_model("test_vit", img_size=32, num_classes=3)
    dim, tokens = plain.embed_dim, plain.patch_embed.num_patches + plain.num_prefix_tokens
    assert report["method_params"] - without["method_params"] == 4 * dim
    assert report["trainable_locations"]["temporal_embedding"] == 4 * dim
    assert "temporal_embedding_additions" not in without["flops"]
    assert report["flops"]["temporal_embedding_additions"] == tokens * 4 * dim  # every token of every frame
    assert {k: v for k, v in report["flops"].items() if k != "temporal_embedding_additions"} == without["flops"]
    table = CliRunner().invoke(app, [a for a in args if a != "--json"] + ["--set", "method.temporal_embedding=true"])
    assert f"{tokens * 4 * dim:,} additions" in table.output


def test_docs_count_of_the_table_on_vit_b16():
    """docs/methods.md: with ``temporal_embedding`` on ViT-B/16 and 8 frames, 14,201,856 + 8 x 768 method parameters."""
    import json

    from typer.testing import CliRunner

    from adaptcli.cli.app import app

    result = CliRunner().invoke(app, ["inspect-params", "--model", "vit_base_patch16_224", "--method", "zeroi2v",
                                      "--num-classes", "100", "--json", "--set", "method.temporal_embedding=true"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["method_params"] == 14_201_856 + 8 * 768 == 14_208_000
    assert report["trainable_params"] == 14_284_900 and report["mergeable"] is True


@pytest.mark.parametrize("family", ["clip", "dinov2_reg", "siglip", "deit3"])
def test_temporal_embedding_merges_exactly_on_each_family(family):
    """Register tokens (DINOv2-reg), no class token (SigLIP) and a class token outside the position table
    (DeiT-III): the table reaches every token of its frame before ``norm_pre``, and the merge keeps it."""
    from tests.models.test_backbone_families import FAMILIES

    name, kwargs = FAMILIES[family]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=3, **kwargs).double()
    info = apply_method(model, "zeroi2v", dict_options({"temporal_embedding": True}), num_frames=FRAMES)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    model.eval()
    size = kwargs["img_size"]
    clip = torch.randn(2, 3, FRAMES, size, size, dtype=torch.float64)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    with torch.no_grad():
        expected = model(clip)
        merged = merge_method(copy.deepcopy(model), info)
        torch.testing.assert_close(merged(clip), expected, rtol=0, atol=1e-12)
        tokens = seen[0].view(2, FRAMES, *seen[0].shape[1:])
        model.temporal_embedding.zero_()
        model(clip)
    before = seen[-1].view(2, FRAMES, *seen[-1].shape[1:])
    if isinstance(model.norm_pre, torch.nn.Identity):  # every token of frame t, prefix tokens too, got row t
        table = merged.temporal_embedding.view(1, FRAMES, 1, -1)
        torch.testing.assert_close(tokens - before, table.expand_as(tokens), rtol=0, atol=1e-12)
    else:  # CLIP's ln_pre follows the addition
        assert not torch.allclose(tokens, before)
