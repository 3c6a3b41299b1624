"""Every method on the video ViT and on a tiny Swin: training step, trainable names, ARC merge."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from adaptcli.methods.registry import method_spec
from adaptcli.errors import UnsupportedModelError
from adaptcli.methods import AdaptInfo, apply_method, merge_method
from adaptcli.methods.arc.method import SHARED_NAME
from tests.models.backbone_zoo import batch_for, build, randomise

NUM_CLASSES = 5
NEW_METHODS = ["adapter_plus", "bitfit", "ssf", "lora", "dora"]
VIDEO_METHODS = ["adaptformer", "arc", "arc_att", "vpt_shallow", "vpt_deep", "linear", "full", *NEW_METHODS]
SWIN_METHODS = ["adaptformer", "arc", "arc_att", "linear", "full", *NEW_METHODS]
CASES = [("video_vit", m) for m in VIDEO_METHODS] + [("swin", m) for m in SWIN_METHODS]

#: Parameters each method trains besides the classifier (and fc_norm).
METHOD_PARAMS = {
    "adaptformer": r"\.adaptmlp\.",
    "arc": rf"^{SHARED_NAME}\.|\.norm[12]\.(scale|bias)$",
    "arc_att": rf"^{SHARED_NAME}\.|\.norm1\.(scale|bias)$",
    "vpt_shallow": r"^vpt\.embeddings$",
    "vpt_deep": r"^vpt\.embeddings$",
    "linear": r"$^",
    "adapter_plus": r"\.adapter_plus\.",
    "bitfit": r"(?<!base_layer)\.bias$|\.relative_position_bias_table$",  # every tensor named *bias*
    "ssf": r"\.ssf\.(scale|shift)$",
    "lora": r"\.attn\.qkv\.lora_[AB]\.default\.weight$",
    "dora": r"\.attn\.qkv\.lora_([AB]|magnitude_vector)\.default\.weight$",
}
HEADS = r"^(head|fc_norm)\."


def adapted(kind: str, method: str, **options) -> nn.Module:
    return adapted_with_info(kind, method, **options)[0]


def adapted_with_info(kind: str, method: str, **options) -> tuple[nn.Module, AdaptInfo]:
    model = build(kind, num_classes=NUM_CLASSES)
    return model, apply_method(model, method, method_spec(method).options(**options))


@pytest.mark.parametrize("kind,method", CASES)
def test_train_step_reaches_exactly_the_trainable_parameters(kind: str, method: str) -> None:
    model = adapted(kind, method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if method == "full":
        assert trainable == {n for n, _ in model.named_parameters()}
    else:
        pattern = re.compile(f"{METHOD_PARAMS[method]}|{HEADS}")
        frozen_norm = re.compile(r"^fc_norm\.base_layer\.")  # SSF's paper site keeps the pooled fc_norm frozen
        if method == "bitfit":  # the baselines' rule: fc_norm.weight is not named *bias*
            frozen_norm = re.compile(r"^fc_norm\.weight$")
        assert trainable == {n for n, _ in model.named_parameters() if pattern.search(n) and not frozen_norm.search(n)}
        assert any(re.search(HEADS, n) for n in trainable)
    model.train()
    x = batch_for(model, batch=4)
    labels = torch.arange(4) % NUM_CLASSES
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == (name in trainable), name
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable and changed


def test_adaptformer_reaches_every_block_and_matches_the_paper_per_block() -> None:
    model = adapted("video_vit", "adaptformer", mid_dim=8)
    assert all(hasattr(block, "adaptmlp") for block in model.blocks)
    swin = adapted("swin", "adaptformer", mid_dim=8)
    blocks = [b for stage in swin.layers for b in stage.blocks]
    assert len(blocks) == 4 and all(hasattr(b, "adaptmlp") for b in blocks)
    # 2*D*d + d + D per block, with D the stage width (32, then 64)
    count = sum(p.numel() for n, p in swin.named_parameters() if ".adaptmlp." in n)
    assert count == 2 * (2 * 32 * 8 + 8 + 32) + 2 * (2 * 64 * 8 + 8 + 64)


def test_arc_shares_one_projection_per_swin_stage() -> None:
    model = adapted("swin", "arc", dim=4)
    shared = getattr(model, SHARED_NAME)
    assert sorted(shared.keys()) == ["g0_att", "g0_mlp", "g1_att", "g1_mlp"]
    assert shared["g0_att"].weight.shape == (32, 4) and shared["g1_att"].weight.shape == (64, 4)
    for stage, group in zip(model.layers, ("g0", "g1")):
        for block in stage.blocks:
            assert block.norm1.projection is shared[f"{group}_att"]
            assert block.norm2.projection is shared[f"{group}_mlp"]


def test_arc_shares_one_projection_across_the_video_vit() -> None:
    model = adapted("video_vit", "arc", dim=4)
    assert sorted(getattr(model, SHARED_NAME).keys()) == ["g0_att", "g0_mlp"]


@pytest.mark.parametrize("kind,method", [(k, m) for k in ("video_vit", "swin")
                                         for m in ("arc", "arc_att", "linear", "bitfit", "ssf", "lora", "dora")])
def test_merge_is_exact_and_gives_the_plain_architecture(kind: str, method: str) -> None:
    # SSF's paper site on the mean-pooling video ViT does not merge (tested below); its fc_norm variant does
    model, info = adapted_with_info(kind, method, **({"pooled_site": "fc_norm"} if method == "ssf" else {}))
    x = batch_for(model)
    if method == "linear":
        model.train()
        with torch.no_grad():
            for seed in range(3):  # non-trivial running statistics
                model(batch_for(model, batch=4, seed=10 + seed) * (seed + 1))
    randomise(model, info.method_param_names)
    model.eval()
    with torch.no_grad():
        before = model(x)
        merge_method(model, info)
        after = model(x)
    assert (before - after).abs().max() <= 1e-5
    fresh = build(kind, num_classes=NUM_CLASSES, seed=9)
    fresh.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), after)


@pytest.mark.parametrize("method", ["vpt_shallow", "vpt_deep"])
def test_vpt_refused_on_swin_in_one_line(method: str) -> None:
    with pytest.raises(UnsupportedModelError, match="Swin") as info:
        adapted("swin", method)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["vpt_shallow", "vpt_deep"])
def test_vpt_prompts_among_space_time_tokens_are_not_pooled(method: str) -> None:
    model = adapted("video_vit", method, tokens=3).eval()
    lengths: list[int] = []
    model.blocks[-1].register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    x = batch_for(model)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert lengths == [3 + 8]  # the blocks see prompts + 2 x 2 x 2 tubelets
        assert tokens.shape == (2, 8, 64)  # removed after the last block: pooling never sees them
        logits = model.forward_head(tokens)
        expected = model.head(model.fc_norm(tokens.mean(1)))
        assert torch.allclose(logits, expected, atol=1e-6)
        assert torch.allclose(model(x), logits, atol=1e-6)
        model.vpt.embeddings.add_(torch.randn_like(model.vpt.embeddings))  # not a constant: LN removes it
        assert not torch.allclose(model(x), logits, atol=1e-4)


def test_ssf_follows_the_patch_embedding_of_each_backbone() -> None:
    video = adapted("video_vit", "ssf")
    assert isinstance(video.patch_embed.proj.base_layer, nn.Conv3d)  # one gamma per output channel
    swin = adapted("swin", "ssf", patch_merging=True)
    # Swin's embedding: its convolution and its norm (the paper's ssf_scale_1 and ssf_scale_2)
    assert isinstance(swin.patch_embed.proj.base_layer, nn.Conv2d)
    assert isinstance(swin.patch_embed.norm.base_layer, nn.LayerNorm)
    assert isinstance(swin.layers[1].downsample.norm.base_layer, nn.LayerNorm)  # patch merging, 4 x 32 channels
    assert isinstance(swin.norm.base_layer, nn.LayerNorm)
    per_block = 2 * (32 + 3 * 32 + 32 + 32 + 4 * 32 + 32)
    count = sum(p.numel() for n, p in swin.named_parameters() if ".ssf." in n)
    assert count == 2 * (32 + 32) + 2 * per_block + 2 * 4 * 32 + 2 * per_block * 2 + 2 * 64
    executed = adapted("swin", "ssf")  # the official code as it runs: no scale-shift in PatchMerging
    assert type(executed.layers[1].downsample.norm) is nn.LayerNorm
    assert sum(p.numel() for n, p in executed.named_parameters() if ".ssf." in n) == count - 2 * 4 * 32


def test_ssf_pooled_site_scales_the_pooled_features_before_the_frozen_fc_norm() -> None:
    from adaptcli.errors import NotMergeableError

    model, info = adapted_with_info("video_vit", "ssf")
    randomise(model, info.method_param_names)
    model.eval()
    x = batch_for(model)
    site = model.fc_norm
    assert not any(p.requires_grad for p in site.base_layer.parameters()) and site.ssf.scale.requires_grad
    with torch.no_grad():
        tokens = model.forward_features(x)
        expected = model.head(site.base_layer(tokens.mean(1) * site.ssf.scale + site.ssf.shift))
        # the paper's site is on the tokens before pooling: the same by linearity of the mean
        on_tokens = model.head(site.base_layer((tokens * site.ssf.scale + site.ssf.shift).mean(1)))
        assert torch.allclose(model(x), expected, atol=1e-6) and torch.allclose(model(x), on_tokens, atol=1e-5)
    assert not info.mergeable
    with pytest.raises(NotMergeableError, match="pooled_site=fc_norm"):
        merge_method(model, info)
    plain, plain_info = adapted_with_info("video_vit", "ssf", pooled_site="fc_norm")
    assert plain_info.mergeable and plain.fc_norm.weight.requires_grad
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert count(model) == count(plain)  # 2D either way: the site's gamma and beta, or fc_norm's


def test_ssf_on_video_swin_counts_like_swin() -> None:
    import timm

    import adaptcli.models.architectures  # noqa: F401

    from adaptcli.methods.ssf.config import SsfOptions

    model = timm.create_model("swin3d_t", num_classes=5)
    info = apply_method(model, "ssf", SsfOptions(patch_merging=True))
    sites = [n.rsplit(".ssf", 1)[0] for n, _ in model.named_modules() if n.endswith(".ssf")]
    assert sites[:2] == ["patch_embed.proj", "patch_embed.norm"] and sites[-1] == "norm"
    assert sum(1 for s in sites if s.endswith((".mlp.0", ".mlp.3"))) == 2 * 12  # 12 blocks, both MLP layers
    assert sum(1 for s in sites if s.startswith("features.") and s.count(".") == 2 and s.endswith(".norm")) == 3
    assert info.mergeable
    randomise(model, info.method_param_names)
    model.eval()
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        merge_method(model, info)
        assert (model(x) - before).abs().max() <= 1e-5
    assert not any(".ssf." in n for n, _ in model.named_parameters())


def test_a_wrapped_patch_embedding_is_still_seen_as_video() -> None:
    from adaptcli.runs.build import is_video_model

    assert is_video_model(adapted("video_vit", "ssf")) and not is_video_model(adapted("swin", "ssf"))
