"""``method.qkv: split``: LoRA/DoRA on the q, k and/or v rows of the fused qkv, checked against its formula,
against peft's own LoRA/DoRA (same update written as one block-diagonal pair), merged, counted and refused."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.methods import apply_method, merge_method
from adaptcli.methods.peft_tuners.split import SplitQkvLora
from adaptcli.methods.registry import method_spec
from tests.method_cases import adapted_model, info_of, input_for, plain_model, randomise_method_params
from tests.models.backbone_zoo import batch_for, build

runner = CliRunner()


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("targets", [["q", "k"], ["v"], ["q", "k", "v"]])
def test_split_at_init_equals_the_plain_model(method, targets):
    plain = plain_model("test_vit")
    model = adapted_model("test_vit", method, {"qkv": "split", "split_targets": targets, "dropout": 0.1})
    x = input_for(plain)
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_q_only_changes_only_the_q_rows(method):
    model = adapted_model("test_vit", method, {"qkv": "split", "split_targets": ["q"], "r": 2, "alpha": 4})
    randomise_method_params(model)
    qkv = model.blocks[0].attn.qkv
    assert isinstance(qkv, SplitQkvLora) and set(qkv.lora_A) == {"q"}
    width = qkv.base_layer.out_features // 3
    x = torch.randn(2, 5, qkv.base_layer.in_features)
    with torch.no_grad():
        adapted, plain = qkv(x), qkv.base_layer(x)
    assert torch.equal(adapted[..., width:], plain[..., width:])
    assert (adapted[..., :width] - plain[..., :width]).abs().min() > 0
    if method == "lora":  # the formula: q rows + (alpha / r) x A^T B^T
        a, b = qkv.lora_A["q"].weight, qkv.lora_B["q"].weight
        torch.testing.assert_close(adapted[..., :width], plain[..., :width] + 2.0 * x @ a.T @ b.T)


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_split_q_k_v_equals_peft_with_a_block_diagonal_b(method):
    """Three rank-r parts are peft's rank-3r LoRA/DoRA on qkv with A stacked and B block-diagonal."""
    r, alpha = 2, 3.0
    split = adapted_model("test_vit", method, {"qkv": "split", "split_targets": ["q", "k", "v"], "r": r,
                                               "alpha": alpha}).double()
    randomise_method_params(split)
    fused = adapted_model("test_vit", method, {"r": 3 * r, "alpha": 3 * alpha}).double()  # same alpha / r
    with torch.no_grad():
        for ours, theirs in zip(split.blocks, fused.blocks):
            s, f = ours.attn.qkv, theirs.attn.qkv
            f.lora_A["default"].weight.copy_(torch.cat([s.lora_A[p].weight for p in "qkv"]))
            f.lora_B["default"].weight.copy_(torch.block_diag(*[s.lora_B[p].weight for p in "qkv"]))
            if method == "dora":
                f.lora_magnitude_vector["default"].weight.copy_(torch.cat([s.lora_magnitude[p] for p in "qkv"]))
        for name, value in split.named_parameters():  # head: the same
            if name.startswith("head."):
                fused.get_parameter(name).copy_(value)
        x = input_for(split).double()
        assert (split(x) - fused(x)).abs().max() <= 1e-10


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("kind", ["swin", "video_vit"])
def test_split_merges_exactly_on_swin_and_the_video_vit(method, kind):
    model = build(kind).double()
    info = apply_method(model, method, method_spec(method).options(qkv="split", split_targets=["k", "v"]))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for name in info.method_param_names:
            param = model.get_parameter(name)
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.2)
    x = batch_for(model).double()
    with torch.no_grad():
        before = model(x)
        merge_method(model, info)
        after = model(x)
    assert not any(isinstance(m, SplitQkvLora) for m in model.modules())
    assert (before - after).abs().max() <= 1e-10
    plain = build(kind).double()
    plain.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_merge_is_exact_in_float32(method):
    model = adapted_model("vit_small_patch16_224", method, {"qkv": "split"})
    randomise_method_params(model)
    x = input_for(model)
    with torch.no_grad():
        before = model(x)
        merge_method(model, info_of(model))
        assert (before - model(x)).abs().max() <= 1e-5


def inspect_count(method: str, *settings: str) -> int:
    import json

    args = ["inspect-params", "--model", "vit_base_patch16_224", "--method", method, "--num-classes", "100", "--json"]
    result = runner.invoke(app, [*args, *[a for s in settings for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["method_params"]


def test_counts_on_vit_b():
    # q and k, rank 8 each: 12 blocks x 2 parts x 8 x (768 + 768); equal to fused rank 8: 12 x 8 x (768 + 2304).
    assert inspect_count("lora", "method.qkv=split") == 12 * 2 * 8 * (768 + 768) == 294_912
    assert inspect_count("lora", "method.qkv=split", "method.split_targets=[q,k,v]") == 442_368
    assert inspect_count("dora", "method.qkv=split") == 294_912 + 12 * 2 * 768 == 313_344


@pytest.mark.parametrize("settings, message", [
    (["method.qkv=splt"], "method.qkv: expected one of 'fused' | 'split', got 'splt'"),
    (["method.qkv=split", "method.split_targets=[q,q]"], "method.split_targets=['q', 'q'] is out of range"),
    (["method.qkv=split", "method.split_targets=[]"], "one to three distinct parts"),
    (["method.qkv=split", "method.split_targets=[o]"], "method.split_targets[0]: expected one of 'q' | 'k' | 'v'"),
    (["method.split_targets=[v]"], "applies with method.qkv=split only: add --set method.qkv=split"),
    (["method.qkv=split", "method.target_modules=[fc1]"], "leave it at [qkv] or use method.qkv=fused"),
    (["method.qkv=split", "method.r=100000"], "method.r=100000 would add"),
])
def test_bad_split_options_are_one_line(settings, message):
    args = ["inspect-params", "--model", "test_vit", "--num-classes", "3", "--method", "lora"]
    result = runner.invoke(app, [*args, *[a for s in settings for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


HOULSBY = {"qkv": "split", "init": "houlsby", "dropout_mask": "per_part", "dropout": 0.1}


def test_houlsby_init_is_adapter_plus_baseline_draw():
    """visinf/adapter_plus adapter_plus/vit_adapter.py lines 52-63: std 0.01, cut at +-2 std, both projections
    (B is not zero at the start, so the model is not the plain one)."""
    model = adapted_model("test_vit", "lora", HOULSBY)
    qkv = model.blocks[0].attn.qkv
    for part in ("q", "k"):
        for weight in (qkv.lora_A[part].weight, qkv.lora_B[part].weight):
            assert weight.abs().max() <= 0.02 and torch.count_nonzero(weight) == weight.numel()
            assert 0.005 < weight.std() < 0.012  # a normal of std 0.01 cut at 2 std: std about 0.0088
    plain = plain_model("test_vit")
    x = input_for(plain)
    with torch.no_grad():
        assert not torch.equal(plain(x), model.eval()(x))


@pytest.mark.parametrize("mask, same", [("shared", True), ("per_part", False)])
def test_dropout_mask_is_shared_or_drawn_per_part(mask, same):
    """Equal q and k updates on a zero base layer: one mask gives equal q and k outputs, one per part does not."""
    model = adapted_model("test_vit", "lora", {"qkv": "split", "dropout": 0.5, "dropout_mask": mask})
    qkv = model.blocks[0].attn.qkv
    with torch.no_grad():
        qkv.base_layer.weight.zero_()
        qkv.base_layer.bias.zero_()
        for part in ("q", "k"):
            qkv.lora_A[part].weight.copy_(torch.ones_like(qkv.lora_A[part].weight))
            qkv.lora_B[part].weight.copy_(torch.ones_like(qkv.lora_B[part].weight))
    qkv.train()
    torch.manual_seed(0)
    with torch.no_grad():
        out = qkv(torch.randn(4, 6, qkv.base_layer.in_features))
    q, k = out[..., :qkv.width], out[..., qkv.width:2 * qkv.width]
    assert torch.equal(q, k) is same


def test_dora_houlsby_magnitude_is_the_norm_of_the_adapted_rows():
    model = adapted_model("test_vit", "dora", HOULSBY)
    model.eval()
    qkv = model.blocks[0].attn.qkv
    with torch.no_grad():
        for part in ("q", "k"):
            rows = qkv._rows(qkv.base_layer.weight, part) + qkv.delta(part)
            torch.testing.assert_close(qkv.lora_magnitude[part], rows.norm(dim=1))
            torch.testing.assert_close(qkv._dora_scale(part), torch.ones_like(qkv._dora_scale(part)))


@pytest.mark.parametrize("option", ["method.init=houlsby", "method.dropout_mask=per_part"])
def test_split_only_options_are_refused_with_fused(option):
    result = runner.invoke(app, ["inspect-params", "--model", "test_vit", "--method", "lora", "--num-classes", "3",
                                 "--set", option])
    assert result.exit_code == 2
    assert "applies with method.qkv=split only" in result.output and len(result.output.strip().splitlines()) == 1
