"""One backbone in memory, several tasks; refusals; the light top-level import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import adaptcli
from adaptcli.errors import AdaptError
from tests.export.conftest import header, invoke


def x(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_one_backbone_switches_between_adapters_of_different_tasks(runs, tmp_path):
    from adaptcli.deploy import AdapterSwitcher
    from adaptcli.runs.load import load_run_model
    from adaptcli.runs.folder import RunDir

    # Three tasks adapted from one backbone file (the first run's frozen weights, as a checkpoint):
    # 3 colours with AdaptFormer, 2 other colours with ARC, 3 colours with a linear probe.
    source = runs.get("adaptformer")
    backbone = source / "backbone.safetensors"
    tasks = {
        "colours-af": source,
        "two-arc": runs.get("arc", "two", "--checkpoint", str(backbone)),
        "colours-linear": runs.get("linear", "colours", "--checkpoint", str(backbone)),
        "two-lora": runs.get("lora", "two", "--checkpoint", str(backbone)),  # peft's layers
        "colours-ssf": runs.get("ssf", "colours", "--checkpoint", str(backbone)),  # wrapped layers
        "two-bitfit": runs.get("bitfit", "two", "--checkpoint", str(backbone)),  # the backbone's own biases
    }

    files = {}
    for name, run in tasks.items():
        files[name] = tmp_path / f"{name}.safetensors"
        assert invoke("export", "--run", run, "--adapter-only", "--out", files[name]).exit_code == 0

    switcher = AdapterSwitcher(backbone)
    models = {name: switcher.load(path) for name, path in files.items()}
    assert switcher.loaded_backbones == 1
    with torch.no_grad():
        for name, run in tasks.items():
            expected = load_run_model(RunDir(run)).model(x())
            got = models[name](x())
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= 1e-6, name
        assert models["two-arc"](x()).shape[1] == 2 and models["colours-af"](x()).shape[1] == 3
        a, b = models["colours-af"](x()), models["colours-linear"](x())
        assert float((a - b).abs().max()) > 1e-2  # each task answers with its own adapter

    # The backbone tensors are shared, not copied; the heads are each task's own.
    layers = [m.blocks[0].attn.qkv for m in models.values()]
    qkv = [getattr(layer, "base_layer", layer).weight for layer in layers]  # SSF and LoRA wrap qkv
    assert len({w.data_ptr() for w in qkv}) == 1
    assert len({m.head.weight.data_ptr() if hasattr(m.head, "weight") else m.head[1].weight.data_ptr()
                for m in models.values()}) == len(tasks)
    # BitFit's task has its own biases; the shared backbone keeps the original ones.
    shared_bias = switcher.backbone_for(header(files["two-bitfit"])).blocks[0].attn.qkv.bias
    assert models["colours-af"].blocks[0].attn.qkv.bias.data_ptr() == shared_bias.data_ptr()
    assert models["two-bitfit"].blocks[0].attn.qkv.bias.data_ptr() != shared_bias.data_ptr()
    assert not torch.equal(models["two-bitfit"].blocks[0].attn.qkv.bias, shared_bias)
    # Loading a task after another leaves the first one's predictions unchanged.
    with torch.no_grad():
        before = models["colours-af"](x(5))
        switcher.load(files["two-arc"])
        assert torch.equal(before, models["colours-af"](x(5)))


def test_run_backbone_file_is_a_plain_checkpoint_and_maps_back(runs):
    import timm

    from adaptcli.io import read_safetensors as load_tensors
    from adaptcli.runs.tensors import adapted_keys
    from adaptcli.methods import apply_method
    from adaptcli.models.checkpoints import load_checkpoint

    run = runs.get("arc")
    plain = timm.create_model("test_vit", num_classes=3, img_size=32)
    report = load_checkpoint(plain, run / "backbone.safetensors")
    assert set(report.missing) == {"head.weight", "head.bias"}  # every backbone weight is in the file

    frozen, _ = load_tensors(run / "backbone.safetensors")
    model = timm.create_model("test_vit", num_classes=3, img_size=32)
    apply_method(model, "arc")
    mapped = adapted_keys(model, frozen)
    # The LayerNorm bias goes to the wrapped norm, never to ARC's own bias of the same plain name.
    assert "blocks.0.norm1.base_layer.bias" in mapped and "blocks.0.norm1.bias" not in mapped


@pytest.mark.parametrize("args, message", [
    (["--merge", "--full"], "exactly one of"),
    ([], "exactly one of"),
])
def test_export_flag_refusals(runs, tmp_path, args, message):
    result = invoke("export", "--run", runs.get("linear"), *args, "--out", tmp_path / "m.safetensors")
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_other_refusals(runs, tmp_path):
    run = runs.get("linear")
    cases = [
        (["export", "--run", tmp_path, "--merge", "--out", tmp_path / "m.safetensors"], "not a run folder"),
        (["export", "--run", run, "--merge", "--out", tmp_path / "m.pt"], "must end in .safetensors"),
        (["export", "--run", run, "--merge", "--out", run / "best.safetensors"], "run's own files"),
        (["eval", "--adapter", tmp_path / "a.safetensors", "--data", tmp_path], "--checkpoint"),
        (["eval", "--adapter", tmp_path / "a.safetensors", "--checkpoint", tmp_path / "b"], "--data"),
        (["eval"], "--run RUN, or --adapter"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output

    task = tmp_path / "task.safetensors"
    assert invoke("export", "--run", run, "--adapter-only", "--out", task).exit_code == 0
    with pytest.raises(AdaptError, match="backbone=FILE"):
        adaptcli.load(task)
    with pytest.raises(AdaptError, match="not an adaptcli export"):
        adaptcli.load(run / "backbone.safetensors")


def test_import_adaptcli_stays_light():
    code = "import adaptcli, sys; print('torch' in sys.modules, callable(adaptcli.load), callable(adaptcli.export_run))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]
