"""Every method on every test backbone: trainable set, gradients, identity at init, merge, formulas."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from adaptcli.errors import NotMergeableError
from adaptcli.methods import apply_method, merge_method, trainable_state_dict
from adaptcli.methods.adaptformer.config import AdaptFormerOptions
from adaptcli.methods.arc.config import ArcOptions
from adaptcli.methods.registry import all_methods, method_spec
from tests.method_cases import (
    ADAPT_INFO,
    METHOD_CASES,
    MODELS,
    NUM_CLASSES,
    adapted_model,
    case_id,
    info_of,
    input_for,
    plain_model,
    randomise_method_params,
)


def expected_trainable(plain: nn.Module, method: str, options: dict) -> set[str]:
    """The trainable parameter names, derived from the methods' definitions, not from the code."""
    if method == "full":
        return {name for name, _ in plain.named_parameters()}
    heads = ("head.", "fc_norm.")
    depth = len(plain.blocks)
    layers = options.get("layers") or range(depth)
    names = {"head.1.weight", "head.1.bias"} if method == "linear" else {"head.weight", "head.bias"}
    pooled_ssf = method == "ssf" and options.get("pooled_site", "official") == "official"
    if isinstance(plain.fc_norm, nn.LayerNorm):
        # SSF's paper site before a mean-pooling backbone's fc_norm keeps that norm frozen
        names |= {"fc_norm.ssf.scale", "fc_norm.ssf.shift"} if pooled_ssf else {"fc_norm.weight", "fc_norm.bias"}
        if method == "bitfit" and options.get("fc_norm", "bias") == "bias":
            names.discard("fc_norm.weight")  # the baselines' rule: only tensors named *bias*, and the classifier
    if method == "adaptformer":
        parts = ["down.weight", "down.bias", "up.weight", "up.bias"]
        if options.get("layernorm") == "in":
            parts += ["norm.weight", "norm.bias"]
        names |= {f"blocks.{i}.adaptmlp.{p}" for i in layers for p in parts}
    elif method in ("arc", "arc_att"):
        sides = ["norm1"] if method == "arc_att" else ["norm1", "norm2"]
        shared = ["g0_att"] if method == "arc_att" else ["g0_att", "g0_mlp"]
        names |= {f"arc_projections.{s}.weight" for s in shared}
        names |= {f"blocks.{i}.{n}.{p}" for i in layers for n in sides for p in ("scale", "bias")}
    elif method.startswith("vpt"):
        names.add("vpt.embeddings")
    elif method == "adapter_plus":
        parts = ["down.weight", "down.bias", "up.weight", "up.bias", "scale"]
        names |= {f"blocks.{i}.adapter_plus.{p}" for i in layers for p in parts}
    elif method == "zeroi2v":  # a linear adapter before qkv and fc1, after proj and fc2 (official num_tadapter=2)
        sites = ["attn.qkv.adapter_in", "attn.proj.adapter_out", "mlp.fc1.adapter_in", "mlp.fc2.adapter_out"]
        names |= {f"blocks.{i}.{s}.{p}" for i in layers for s in sites
                  for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
    elif method == "attentive_probe":  # V-JEPA's pooler: query, depth - 1 blocks, the cross-attention block
        cross = ["norm1", "xattn.q", "xattn.kv", "norm2", "mlp.fc1", "mlp.fc2"]
        names |= {"attn_pool.query_tokens"} | {f"attn_pool.cross_attention_block.{n}.{p}" for n in cross
                                                for p in ("weight", "bias")}
        names |= {f"attn_pool.blocks.{i}.{n}.{p}" for i in range(options.get("depth", 4) - 1)
                  for n in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")}
    elif method == "bitfit":  # every tensor named *bias* of the backbone
        names |= {n for n, _ in plain.named_parameters() if "bias" in n and not n.startswith(heads)}
    elif method == "ssf":  # after the patch conv, six layers per block and the final norm (when it has weights)
        targets = ["patch_embed.proj"] + (["patch_embed.norm"] if isinstance(plain.patch_embed.norm, nn.LayerNorm) else [])
        targets += [f"blocks.{i}.{t}" for i in range(depth)
                    for t in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")]
        if isinstance(plain.norm, nn.LayerNorm):
            targets.append("norm")
        names |= {f"{t}.ssf.{p}" for t in targets for p in ("scale", "shift")}
    elif method in ("lora", "dora") and options.get("qkv") == "split":  # A and B (and magnitude) per part
        kinds = ["lora_A", "lora_B"] + (["lora_magnitude"] if method == "dora" else [])
        names |= {f"blocks.{i}.attn.qkv.{kind}.{part}" + (".weight" if kind != "lora_magnitude" else "")
                  for i in range(depth) for part in options.get("split_targets", ["q", "k"]) for kind in kinds}
    elif method in ("lora", "dora"):  # A and B beside each target (and DoRA's magnitude), peft's names
        parts = ["lora_A.default.weight", "lora_B.default.weight"]
        if method == "dora":
            parts.append("lora_magnitude_vector.default.weight")
        where = {"qkv": "attn.qkv", "fc1": "mlp.fc1"}
        names |= {f"blocks.{i}.{where[t]}.{p}" for i in range(depth)
                  for t in options.get("target_modules", ["qkv"]) for p in parts}
    elif method == "peft":
        config = options["peft_config"]
        where = {"qkv": "attn.qkv", "fc2": "mlp.fc2"}
        parts = {"IA3": ["ia3_l.default"],
                 "LOHA": [f"hada_{w}.default" for w in ("w1_a", "w1_b", "w2_a", "w2_b")]}[options["peft_type"]]
        names |= {f"blocks.{i}.{where[t]}.{p}" for i in range(depth)
                  for t in config.get("target_modules", ["qkv"]) for p in parts}
    return names


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("case", METHOD_CASES, ids=case_id)
def test_exactly_the_intended_parameters_train_and_receive_gradients(model_name, case):
    method, options = case
    plain = plain_model(model_name)
    model = adapted_model(model_name, method, options)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected_trainable(plain, method, options)

    randomise_method_params(model)
    logits = model(input_for(model))
    assert logits.shape == (2, NUM_CLASSES)
    logits.square().sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name} got no gradient"
            assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"
        else:
            assert param.grad is None, f"frozen {name} got a gradient"


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["adaptformer", "arc", "arc_att", "lora", "dora"])
def test_identity_at_initialisation(model_name, method):
    """ARC's official init draws the MLP-side scales (not the identity); scale_init=zero is."""
    plain = plain_model(model_name)
    model = adapted_model(model_name, method, {"scale_init": "zero"} if method == "arc" else {})
    x = input_for(plain)
    with torch.no_grad():
        expected = plain.forward_head(plain.forward_features(x), pre_logits=True)
        got = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.equal(expected, got)


MERGEABLE_CASES = [c for c in METHOD_CASES if method_spec(c[0]).mergeable]
#: merged vs unmerged logits, by dtype
MERGE_TOLERANCE = {torch.float64: 1e-5, torch.float32: 2e-4}  # fp64 holds the 1e-5; fp32 rounding
# differs between torch releases' CPU kernels (1.6e-4 on torch 2.6: LoRA on qkv + fc1 of ViT-S, 12 blocks deep)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("case", MERGEABLE_CASES, ids=case_id)
def test_merge_is_exact_and_restores_the_plain_architecture(model_name, case, dtype):
    method, options = case
    model = adapted_model(model_name, method, options).to(dtype)
    if not info_of(model).mergeable:  # SSF's paper site before a mean-pooling backbone's fc_norm
        with pytest.raises(NotMergeableError, match="--full or --adapter-only") as refused:
            merge_method(model, info_of(model))
        assert "\n" not in str(refused.value) and method == "ssf" and isinstance(model.fc_norm.base_layer, nn.LayerNorm)
        return
    randomise_method_params(model)
    if method == "linear":  # give the probe's BatchNorm real statistics
        model.train()
        with torch.no_grad():
            for seed in range(3):
                model((input_for(model, batch=4, seed=seed) * 2 + 1).to(dtype))
        model.eval()
    x = input_for(model).to(dtype)
    with torch.no_grad():
        before = model(x)
    merge_method(model, info_of(model))
    with torch.no_grad():
        after = model(x)
    assert (before - after).abs().max().item() <= MERGE_TOLERANCE[dtype]

    fresh = plain_model(model_name, seed=99).to(dtype)
    fresh.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        reloaded = fresh(x)
    assert (before - reloaded).abs().max().item() <= MERGE_TOLERANCE[dtype]


@pytest.mark.parametrize("method", [spec.name for spec in all_methods() if not spec.mergeable])
def test_non_linear_methods_refuse_to_merge(method):
    from adaptcli.errors import NotMergeableError

    model = adapted_model("test_vit", method, {})
    with pytest.raises(NotMergeableError, match="--full"):
        merge_method(model, info_of(model))


def test_peft_tuners_peft_cannot_merge_are_refused_in_one_line():
    from adaptcli.errors import NotMergeableError

    model = adapted_model("test_vit", "peft", {"peft_type": "LILY", "peft_config": {}})
    with pytest.raises(NotMergeableError, match="peft cannot merge .*--full or --adapter-only") as info:
        merge_method(model, info_of(model))
    assert "\n" not in str(info.value)


def test_lora_is_peft_s_formula_on_qkv():
    options = {"r": 4, "alpha": 8, "target_modules": ["qkv"]}
    model = adapted_model("test_vit", "lora", options)
    randomise_method_params(model)
    qkv = model.blocks[0].attn.qkv
    x = torch.randn(2, 5, qkv.base_layer.in_features)
    a, b = qkv.lora_A["default"].weight, qkv.lora_B["default"].weight
    with torch.no_grad():
        torch.testing.assert_close(qkv(x), qkv.base_layer(x) + (8 / 4) * x @ a.T @ b.T)


def _adaptmlp_formula(x: torch.Tensor, adapter, options: AdaptFormerOptions) -> torch.Tensor:
    h = x
    if options.layernorm == "in":
        h = torch.nn.functional.layer_norm(h, (h.shape[-1],), adapter.norm.weight, adapter.norm.bias, adapter.norm.eps)
    h = torch.relu(h @ adapter.down.weight.T + adapter.down.bias)
    return (h @ adapter.up.weight.T + adapter.up.bias) * options.scale


@pytest.mark.parametrize("form", ["parallel", "sequential"])
@pytest.mark.parametrize("layernorm", ["none", "in"])
def test_adaptformer_block_equals_the_paper_formula(form, layernorm):
    options = AdaptFormerOptions(mid_dim=8, scale=0.3, form=form, layernorm=layernorm)
    plain = plain_model("test_vit")
    model = plain_model("test_vit")
    ADAPT_INFO[model] = apply_method(model, "adaptformer", options)
    randomise_method_params(model)
    model.eval()
    block, plain_block = model.blocks[2], plain.blocks[2]
    adapter = block.adaptmlp
    x = torch.randn(2, 17, plain.embed_dim)
    with torch.no_grad():
        x_mid = x + plain_block.attn(plain_block.norm1(x))
        mlp_out = plain_block.mlp(plain_block.norm2(x_mid))
        if form == "parallel":
            expected = x_mid + mlp_out + _adaptmlp_formula(x_mid, adapter, options)
        else:
            expected = x_mid + mlp_out + _adaptmlp_formula(mlp_out, adapter, options)
        got = block(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_arc_adapter_equals_the_formula_and_shares_its_projection():
    options = ArcOptions(dim=6, dropout=0.0)
    model = plain_model("test_vit")
    ADAPT_INFO[model] = apply_method(model, "arc", options)
    randomise_method_params(model)
    model.eval()
    u_att = model.arc_projections["g0_att"].weight
    assert all(model.blocks[i].norm1.projection.weight is u_att for i in range(len(model.blocks)))
    norm = model.blocks[1].norm1
    x = torch.randn(2, 5, u_att.shape[0])
    with torch.no_grad():
        h = norm.base_layer(x)
        expected = h + (h @ u_att @ torch.diag(norm.scale)) @ u_att.T + norm.bias
        torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-6)
        # Any other norm takes the unfused path: same formula.
        norm.base_layer = nn.Sequential(norm.base_layer)
        torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name", ["test_vit", "test_vit2"])
@pytest.mark.parametrize("method", ["vpt_shallow", "vpt_deep"])
def test_vpt_prompts_sit_after_the_class_token_and_pooling_skips_them(model_name, method):
    plain = plain_model(model_name)
    model = adapted_model(model_name, method, {"tokens": 3})
    x = input_for(model)
    lengths = []
    model.blocks[-1].register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    with torch.no_grad():
        plain_tokens = plain.forward_features(x)
        tokens = model.forward_features(x)
    assert lengths == [plain_tokens.shape[1] + 3]  # the blocks see the prompts
    assert tokens.shape == plain_tokens.shape  # the norm, pooling and head do not
    with torch.no_grad():
        model.vpt.embeddings.add_(torch.randn_like(model.vpt.embeddings))  # not a constant: LayerNorm ignores those
        assert (model(x) - plain(x)).abs().max() > 0  # (test_vit2 has LayerScale 1e-5: tiny but real)


def test_vpt_deep_replaces_prompts_before_every_block():
    model = adapted_model("test_vit", "vpt_deep", {"tokens": 2})
    seen = []
    for block in model.blocks:
        block.register_forward_pre_hook(lambda m, args: seen.append(args[0][:, 1:3].clone()))
    with torch.no_grad():
        model(input_for(model))
    for index, prompts in enumerate(seen):
        expected = model.vpt.embeddings[index].expand_as(prompts)
        assert torch.equal(prompts, expected), f"block {index} did not see its own prompts"


def test_vpt_on_swin_is_refused():
    from adaptcli.errors import UnsupportedModelError

    with torch.device("meta"):
        model = timm.create_model("swin_tiny_patch4_window7_224", num_classes=3)
    with pytest.raises(UnsupportedModelError, match="Swin"):
        apply_method(model, "vpt_deep")


@pytest.mark.parametrize("method", ["adaptformer", "arc", "linear"])
def test_trainable_state_dict_holds_method_head_and_probe_statistics(method):
    model = adapted_model("test_vit", method, {})
    state = trainable_state_dict(model, info_of(model))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(state)
    if method == "linear":
        assert {"head.0.running_mean", "head.0.running_var"} <= set(state)
    assert not any(k.startswith("blocks.0.attn.qkv") for k in state)


def test_adapted_model_deep_copies_with_its_own_hooks():
    import copy

    for method in ("adaptformer", "vpt_deep", "arc"):
        model = adapted_model("test_vit", method, {})
        randomise_method_params(model)
        clone = copy.deepcopy(model)
        x = input_for(model)
        with torch.no_grad():
            torch.testing.assert_close(clone(x), model(x))
            for name in info_of(model).method_param_names:
                clone.get_parameter(name).zero_()
            assert not torch.allclose(clone(x), model(x)), method


def test_adapter_plus_block_equals_the_paper_formula_and_init():
    plain = plain_model("test_vit")
    model = adapted_model("test_vit", "adapter_plus", {})
    branch = model.blocks[1].adapter_plus
    assert torch.equal(branch.scale, torch.ones_like(branch.scale))
    for linear in (branch.down, branch.up):
        assert linear.weight.abs().max() <= 0.02 and torch.count_nonzero(linear.bias) == 0
    randomise_method_params(model)
    x = torch.randn(2, 17, plain.embed_dim)
    with torch.no_grad():
        y = plain.blocks[1](x)
        h = torch.nn.functional.gelu(y @ branch.down.weight.T + branch.down.bias)
        expected = y + branch.scale * (h @ branch.up.weight.T + branch.up.bias)
        torch.testing.assert_close(model.blocks[1](x), expected, rtol=1e-5, atol=1e-6)
    model.train()  # adapter drop-path 0.1: some samples lose the branch in training
    assert branch.drop_path.drop_prob == pytest.approx(0.1)


def test_ssf_scales_and_shifts_each_layer_output():
    model = adapted_model("test_vit", "ssf", {})
    wrapped = model.blocks[0].attn.qkv
    scales = torch.cat([m.scale for n, m in model.named_modules() if n.endswith(".ssf")])
    assert abs(scales.mean().item() - 1) < 0.01 and 0.01 < scales.std().item() < 0.03  # N(1, 0.02)
    x = torch.randn(2, 5, wrapped.base_layer.in_features)
    with torch.no_grad():
        expected = wrapped.base_layer(x) * wrapped.ssf.scale + wrapped.ssf.shift
        torch.testing.assert_close(wrapped(x), expected)
        conv = model.patch_embed.proj
        image = input_for(model)
        expected = conv.base_layer(image) * conv.ssf.scale.view(-1, 1, 1) + conv.ssf.shift.view(-1, 1, 1)
        torch.testing.assert_close(conv(image), expected)
        norm = model.blocks[0].norm1  # folded into the LayerNorm's affine terms: the same values
        expected = norm.base_layer(x_norm := torch.randn(2, 5, norm.ssf.scale.numel())) * norm.ssf.scale + norm.ssf.shift
        torch.testing.assert_close(norm(x_norm), expected)
    x_norm.requires_grad_(True)
    norm(x_norm).square().sum().backward()
    scale_grad, shift_grad = norm.ssf.scale.grad.clone(), norm.ssf.shift.grad.clone()
    norm.ssf.scale.grad = norm.ssf.shift.grad = None
    (norm.base_layer(x_norm) * norm.ssf.scale + norm.ssf.shift).square().sum().backward()
    torch.testing.assert_close(scale_grad, norm.ssf.scale.grad)
    torch.testing.assert_close(shift_grad, norm.ssf.shift.grad)


def test_bitfit_trains_the_backbone_biases_it_already_has():
    plain = plain_model("test_vit")
    model = adapted_model("test_vit", "bitfit", {})
    assert len(list(model.parameters())) == len(list(plain.parameters()))  # nothing added
    assert set(info_of(model).method_param_names) == {
        n for n, _ in plain.named_parameters() if n.endswith(".bias") and not n.startswith(("head.", "fc_norm."))
    }


def test_bitfit_holds_the_video_vit_key_bias_at_zero():
    """The key third of every fused qkv bias gets no gradient and stays zero through AdamW steps; the
    query and value thirds train."""
    from adaptcli.engine.optim import build_optimizer
    from adaptcli.config import TrainConfig

    model = adapted_model("video_vit_test", "bitfit", {})
    model.train()
    dim = model.embed_dim
    qkv = dict(model.named_parameters())["blocks.0.attn.qkv.bias"]
    with torch.no_grad():
        qkv[dim:2 * dim] = 0
    before = qkv.detach().clone()
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.05), 1e-2)
    clip = torch.randn(2, 3, model.num_frames, *model.patch_embed.grid_size[1:]).repeat_interleave(16, -1).repeat_interleave(16, -2)
    for _ in range(3):
        optimizer.zero_grad()
        model(clip).logsumexp(-1).sum().backward()
        assert torch.count_nonzero(qkv.grad[dim:2 * dim]) == 0
        optimizer.step()
    assert torch.count_nonzero(qkv[dim:2 * dim]) == 0
    assert not torch.equal(qkv[:dim], before[:dim]) and not torch.equal(qkv[2 * dim:], before[2 * dim:])
    assert info_of(model).fixed_elements["blocks.0.attn.qkv.bias"] == dim
