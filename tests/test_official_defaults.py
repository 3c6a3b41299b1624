"""The papers' script choices: ARC's official scale initialisation, AdaptFormer's BatchNorm head and the
BitFit baselines' rule on mean-pooling backbones."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adaptcli.config import resolve
from adaptcli.methods import apply_method
from adaptcli.methods.arc.config import ArcOptions
from adaptcli.methods.apply import merge_method, trainable_state_dict
from adaptcli.runs.build import build_adapted_model
from tests.method_cases import input_for, plain_model


def arc_scales(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [b.norm1.scale for b in model.blocks], [b.norm2.scale for b in model.blocks]


def test_arc_default_is_the_official_init_attention_zero_mlp_xavier():
    assert ArcOptions().scale_init == "official"
    model = plain_model("test_vit")
    apply_method(model, "arc")
    att, mlp = arc_scales(model)
    rank = att[0].numel()
    bound = math.sqrt(6.0 / (1 + rank))  # xavier-uniform of a 1 x r matrix
    assert all(torch.count_nonzero(s) == 0 for s in att)
    for s in mlp:
        assert torch.count_nonzero(s) == rank and s.abs().max() <= bound
    assert not torch.equal(mlp[0], mlp[1])  # drawn per block
    assert all(torch.count_nonzero(b.norm1.bias) == 0 and torch.count_nonzero(b.norm2.bias) == 0 for b in model.blocks)


@pytest.mark.parametrize("init, att_zero, mlp_zero", [("zero", True, True), ("xavier", False, False)])
def test_arc_zero_and_xavier_are_kept(init, att_zero, mlp_zero):
    model = plain_model("test_vit")
    apply_method(model, "arc", ArcOptions(scale_init=init))
    att, mlp = arc_scales(model)
    assert all((torch.count_nonzero(s) == 0) == att_zero for s in att)
    assert all((torch.count_nonzero(s) == 0) == mlp_zero for s in mlp)


def tiny(method: str, *sets: str):
    return resolve("quick", method, ["model.img_size=32", *sets])


@pytest.mark.parametrize("method", ["arc", "adaptformer", "vpt_deep", "full"])
def test_bn_head_puts_batchnorm_without_affine_before_the_classifier(method):
    torch.manual_seed(0)  # the caller seeds: both classifiers start from the same draw
    plain = build_adapted_model(tiny(method), 5).model
    torch.manual_seed(0)
    adapted_bn = build_adapted_model(tiny(method, "head.norm=bn"), 5)
    with_bn = adapted_bn.model
    assert isinstance(plain.head, nn.Linear)
    norm, linear = with_bn.head
    assert isinstance(norm, nn.BatchNorm1d) and not norm.affine and norm.eps == 1e-6
    assert norm.num_features == linear.in_features == plain.head.in_features
    torch.testing.assert_close(linear.weight, plain.head.weight)  # the classifier itself is unchanged
    assert linear.weight.requires_grad
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert trainable(with_bn) == trainable(plain)  # no affine: no new parameters
    saved = trainable_state_dict(with_bn, adapted_bn.info)
    assert "head.0.running_mean" in saved and "head.0.running_var" in saved


def test_bn_head_normalises_the_features_and_folds_when_merging():
    adapted = build_adapted_model(tiny("arc", "head.norm=bn", "method.dropout=0"), 5)
    model = adapted.model
    x = input_for(model, batch=8)
    features = {}
    model.head.register_forward_hook(lambda m, args, out: features.update(x=args[0]))
    model.train()
    with torch.no_grad():
        model(x)
    normalised = model.head[0](features["x"])  # train mode: batch statistics
    torch.testing.assert_close(normalised.mean(0), torch.zeros(normalised.shape[1]), atol=1e-4, rtol=0)
    assert not torch.equal(model.head[0].running_mean, torch.zeros_like(model.head[0].running_mean))
    model.eval()
    with torch.no_grad():
        before = model(x)
        merged = merge_method(model, adapted.info)
        after = merged(x)
    assert isinstance(merged.head, nn.Linear)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_adaptformer_protocol_recipes_use_the_bn_head_and_arc_protocols_do_not():
    for recipe in ("cifar100", "svhn", "food101", "ssv2", "hmdb51"):
        assert resolve(recipe, "adaptformer").head.norm == "bn", recipe
    for recipe in ("vtab", "fgvc"):
        assert resolve(recipe, "arc").head.norm == "none", recipe


def vpt_tinytl_bias(model: nn.Module) -> set[str]:
    """KMnP/vpt src/models/vit_models.py lines 304-307 (SSLViT, the MAE backbones with fc_norm), transcribed:
    in the encoder only tensors whose name holds 'bias' train; the classifier (VPT's own head) trains."""
    encoder = {k for k, _ in model.named_parameters() if not k.startswith("head.") and "bias" in k}
    return encoder | {k for k, _ in model.named_parameters() if k.startswith("head.")}


@pytest.mark.parametrize("model_name", ["test_vit2", "video_vit_test"])
def test_bitfit_on_mean_pooling_backbones_is_the_baselines_rule(model_name):
    import adaptcli.models.architectures  # noqa: F401

    model = plain_model(model_name)
    assert isinstance(model.fc_norm, nn.LayerNorm)
    apply_method(model, "bitfit")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == vpt_tinytl_bias(model)
    assert "fc_norm.bias" in trainable and "fc_norm.weight" not in trainable


def test_bitfit_fc_norm_all_trains_its_weight_too():
    from adaptcli.methods.bitfit.config import BitFitOptions

    model = plain_model("test_vit2")
    apply_method(model, "bitfit", BitFitOptions(fc_norm="all"))
    assert model.fc_norm.weight.requires_grad
    assert resolve("quick", "bitfit").method_options.fc_norm == "bias"


def test_head_dropout_is_videomae_fc_drop_rate_before_the_head():
    """MCG-NJU/VideoMAE modeling_finetune.py lines 226 and 284: ``head(fc_dropout(fc_norm(pooled)))``."""
    from adaptcli.engine.features import HeadOnly
    from adaptcli.errors import AdaptError
    from adaptcli.models.build import create_backbone
    from adaptcli.models.config import ModelConfig

    model = create_backbone(ModelConfig(name="video_vit_test", img_size=32, num_frames=4, head_dropout=0.5), 3)
    assert model.head_drop.p == 0.5
    assert model.blocks[0].attn.proj_drop.p == 0.0  # only before the head (VideoMAE's --drop stays 0)
    model.train()
    x = torch.randn(2, 3, 4, 32, 32)
    seen = {}
    model.head.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    model(x)
    assert (seen["x"] == 0).float().mean() > 0.3  # half the pooled features dropped
    assert isinstance(HeadOnly(model).head_drop, nn.Dropout)  # the feature-cache path drops them too
    assert create_backbone(ModelConfig(name="video_vit_test", img_size=32, num_frames=4), 3).head_drop.p == 0.0
    with pytest.raises(AdaptError, match="has no head_drop"):
        create_backbone(ModelConfig(name="swin_tiny_patch4_window7_224", img_size=32, head_dropout=0.5), 3)


@pytest.mark.parametrize("method, key, earlier, now", [("ssf", "patch_merging", True, False),
                                                        ("bitfit", "fc_norm", "all", "bias")])
def test_configs_written_before_a_default_changed_read_as_trained(method, key, earlier, now):
    from adaptcli.config import from_dict

    written = resolve("quick", method).to_dict()
    assert written["method"][key] == now  # what adaptcli writes today: the key, explicitly
    del written["method"][key]  # a config.yaml of an older adaptcli: no such key
    assert getattr(from_dict(written).method_options, key) == earlier
    assert getattr(from_dict(resolve("quick", method).to_dict()).method_options, key) == now
