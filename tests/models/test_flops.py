"""``inspect-params --flops`` for every method: VPT's prompts and the attentive probe's query (views of trainable
parameters) once made it a traceback."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli.app import app
from adaptcli.methods.registry import all_methods

IMAGE = ["--model", "test_vit", "--num-classes", "3", "--flops", "--json", "--set", "model.img_size=32"]


@pytest.mark.parametrize("method", [spec.name for spec in all_methods() if spec.name != "zeroi2v"])
def test_every_image_method_counts_its_flops(method):
    result = CliRunner().invoke(app, ["inspect-params", "--method", method, *IMAGE])
    assert result.exit_code == 0, result.output
    flops = json.loads(result.output)["flops"]
    assert flops["input"] == "1 x 3 x 32 x 32" and flops["backbone"] > 0
    assert flops["adapted"] >= flops["backbone"]  # VPT: its prompts expand like the probe's query did
    if method == "attentive_probe":  # its blocks and cross-attention run on top of the backbone's
        assert flops["adapted"] > flops["backbone"] and flops["merged"] is None


def test_counting_leaves_the_trainable_parameters_trainable():
    from adaptcli.methods import apply_method
    from adaptcli.methods.registry import method_spec
    from adaptcli.runs.flops import forward_flops
    import timm

    model = timm.create_model("test_vit", img_size=32, num_classes=3)
    apply_method(model, "attentive_probe", method_spec("attentive_probe").options())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "attn_pool.query_tokens" in trainable
    assert forward_flops(model.eval(), torch.zeros(1, 3, 32, 32)) > 0
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
