"""``train.recompute``: identical gradients for every method, less saved activation memory, keys unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from adaptcli.methods import apply_method
from adaptcli.methods.registry import method_spec
from adaptcli.models.recompute import apply_recompute
from tests.models.backbone_zoo import batch_for, build, randomise
from tests.method_cases import METHOD_CASES, adapted_model, case_id, input_for, randomise_method_params

MODES = ["frozen", "all"]


def gradients(model: nn.Module, inputs: torch.Tensor, seed: int = 5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the trainable parameters' gradients of one training-mode step (dropout active)."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    logits = model(inputs)
    (logits.square().sum() + logits.sum()).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same_gradients(reference: nn.Module, recomputed: nn.Module, inputs: torch.Tensor) -> None:
    logits, expected = gradients(reference, inputs)
    logits_r, got = gradients(recomputed, inputs)
    assert set(got) == set(expected) and expected
    torch.testing.assert_close(logits_r, logits, rtol=0, atol=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=0, atol=1e-6, msg=lambda m: f"{name}: {m}")


def with_dropout(options: dict, method: str) -> dict:
    """Dropout on where the method has it, so the replayed random masks are tested too."""
    fields = method_spec(method).options.__dataclass_fields__
    return {**options, "dropout": 0.3} if "dropout" in fields and "dropout" not in options else options


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", METHOD_CASES, ids=case_id)
def test_every_method_gets_identical_gradients(case, mode):
    method, options = case
    options = with_dropout(options, method)
    reference = adapted_model("test_vit", method, options)
    randomise_method_params(reference)
    recomputed = copy.deepcopy(reference)
    blocks = apply_recompute(recomputed, mode)
    probe_blocks = len(recomputed.attn_pool.blocks or []) if method == "attentive_probe" and mode == "all" else 0
    assert blocks == (0 if mode == "frozen" and method == "full" else len(recomputed.blocks) + probe_blocks)
    assert_same_gradients(reference, recomputed, input_for(reference, batch=3))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind,method", [("video_vit", "adaptformer"), ("video_vit", "arc"), ("video_vit", "vpt_deep"),
                                         ("swin", "arc"), ("swin", "lora"), ("swin", "adapter_plus")])
def test_video_vit_and_swin_get_identical_gradients(kind, method, mode):
    reference = build(kind, seed=0)
    info = apply_method(reference, method, method_spec(method).options())
    randomise(reference, list(info.method_param_names))
    recomputed = copy.deepcopy(reference)
    assert apply_recompute(recomputed, mode) > 0
    assert_same_gradients(reference, recomputed, batch_for(reference))


def saved_activation_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes still allocated when the forward ends (what autograd and selective checkpointing keep for
    backward, and the logits), by torch's CPU allocator: the same count on every torch, while only newer
    ones show the tensors that selective checkpointing keeps to ``saved_tensors_hooks``."""
    from torch.profiler import ProfilerActivity, profile

    model.train()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = model(inputs).sum()
    kept = sum(event.self_cpu_memory_usage for event in prof.events())
    loss.backward()
    return kept


@pytest.mark.parametrize("method", ["adaptformer", "arc", "lora"])
def test_frozen_keeps_far_less_than_none_and_all_keeps_least(method):
    reference = adapted_model("vit_small_patch16_224", method, {})
    inputs = input_for(reference, batch=2)
    plain = saved_activation_bytes(reference, inputs)
    frozen, everything = copy.deepcopy(reference), copy.deepcopy(reference)
    apply_recompute(frozen, "frozen")
    apply_recompute(everything, "all")
    selective, whole = saved_activation_bytes(frozen, inputs), saved_activation_bytes(everything, inputs)
    # a frozen block keeps ~10 stream-sized tensors per token without recomputation, 4 with it
    assert selective < 0.6 * plain, (selective, plain)
    assert whole < selective


def test_full_fine_tuning_has_no_frozen_block_and_all_checkpoints_every_block():
    model = adapted_model("test_vit", "full", {})
    assert apply_recompute(copy.deepcopy(model), "frozen") == 0
    assert apply_recompute(copy.deepcopy(model), "all") == len(model.blocks)
    assert apply_recompute(model, "none") == 0


def test_names_state_dict_and_inference_are_unchanged():
    reference = adapted_model("test_vit", "arc", {})
    randomise_method_params(reference)
    recomputed = copy.deepcopy(reference)
    apply_recompute(recomputed, "frozen")
    assert list(recomputed.state_dict()) == list(reference.state_dict())
    inputs = input_for(reference)
    with torch.no_grad():
        torch.testing.assert_close(recomputed.eval()(inputs), reference.eval()(inputs), rtol=0, atol=0)


def test_a_copy_of_a_recomputing_model_runs_its_own_weights():
    plain = adapted_model("test_vit", "adaptformer", {})
    randomise_method_params(plain)
    model = copy.deepcopy(plain)
    apply_recompute(model, "frozen")
    twin, plain_twin = copy.deepcopy(model), copy.deepcopy(plain)
    with torch.no_grad():
        for param in [*twin.parameters(), *plain_twin.parameters()]:
            param.mul_(0.5)
    inputs = input_for(model)
    assert_same_gradients(plain_twin, twin, inputs)
    with torch.no_grad():
        assert not torch.allclose(twin.eval()(inputs), model.eval()(inputs))


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="none, frozen, all"):
        apply_recompute(adapted_model("test_vit", "arc", {}), "some")
