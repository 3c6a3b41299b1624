"""Merged exports of timm's Swin (``--merge`` as safetensors, a timm folder, a hub folder) pass their own check and
load as the run's model. A LoRA run moved away from identity used to fail the check: its logits are sensitive
enough that float32 rounding alone (fused window attention in the run, timm's explicit one in the reloaded folder,
the folded weights) moved them by ~1e-2, while the same models in float64 agree to ~1e-11."""

from __future__ import annotations

import pytest
import torch

from tests.export.conftest import invoke

SWIN = ("colours", "--model", "swin_tiny_patch4_window7_224")
FORMATS = {"safetensors": "merged.safetensors", "timm": "timm-merged", "hub": "hub"}


@torch.no_grad()
def logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model.float().eval()(inputs.float())


#: LoRA (the sensitive run) in every merge format; SSF and BitFit in the timm folder, the format whose reload
#: computes attention another way (timm's explicit window attention) than the run
CASES = [("lora", list(FORMATS)), ("ssf", ["timm"]), ("bitfit", ["timm"])]


@pytest.mark.parametrize("method, formats", CASES, ids=[method for method, _ in CASES])
def test_every_merge_format_of_a_swin_run_passes_its_check_and_predicts_as_the_run(runs, tmp_path, method, formats):
    import adaptcli
    from adaptcli.deploy.check import rounding_limit
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = runs.get(method, *SWIN)
    reference = load_run_model(RunDir(run)).model
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    expected = logits(reference, inputs)
    for fmt in formats:
        out = tmp_path / FORMATS[fmt]
        result = invoke("export", "--run", run, "--merge", "--format", fmt, "--out", out)
        assert result.exit_code == 0, (fmt, result.output)
        assert "check: max |difference| = " in result.output and out.exists()
        reloaded = adaptcli.load(out)
        got = logits(reloaded, inputs)
        # on a batch the check did not see: within what float32 rounding explains, and the same classes
        assert (got - expected).abs().max() <= rounding_limit(reference, reloaded, inputs), fmt
        assert torch.equal(got.argmax(-1), expected.argmax(-1)), fmt


def test_the_rounding_limit_of_a_sensitive_swin_still_refuses_a_merge_that_misses_the_method(runs):
    """The LoRA run's logits move by more than 1e-4 under float32 rounding alone; its limit stays far below what
    dropping the method (the run's own frozen backbone) does to them."""
    import copy

    from adaptcli.deploy.check import TOLERANCE, rounding_limit
    from adaptcli.io import read_safetensors
    from adaptcli.methods.apply import merge_method
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = runs.get("lora", *SWIN)
    loaded = load_run_model(RunDir(run))
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    merged = merge_method(copy.deepcopy(loaded.model), loaded.adapt)
    limit = rounding_limit(loaded.model, merged, inputs)
    assert limit > TOLERANCE  # the case this limit exists for
    frozen, _ = read_safetensors(run / "backbone.safetensors")
    backbone = copy.deepcopy(merged)  # the trained head, the backbone's weights without LoRA folded in
    assert not backbone.load_state_dict({k: v for k, v in frozen.items() if ".qkv." in k}, strict=False).unexpected_keys
    assert (logits(loaded.model, inputs) - logits(backbone, inputs)).abs().max() > 10 * limit


def test_adaptformer_on_swin_is_refused_in_one_line(runs, tmp_path):
    run = runs.get("adaptformer", *SWIN)
    result = invoke("export", "--run", run, "--merge", "--format", "timm", "--out", tmp_path / "x")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--full or --adapter-only" in result.stderr and not (tmp_path / "x").exists()
