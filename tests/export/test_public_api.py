"""The Python API: ``from adaptcli.deploy import load``, ``adaptcli.export_run`` with any format, typed results."""

from __future__ import annotations

import importlib
import json

import torch

import adaptcli
from adaptcli.deploy.modes import ExportMode

#: The keys export results had as plain dicts (the demo's results.json keeps them).
OLD_KEYS = {"path", "bytes", "mode", "format", "file_format", "method", "backbone", "tensors", "max_abs_diff",
            "create_kwargs"}


def test_deploy_load_is_the_function_even_after_its_module_is_imported(runs, tmp_path):
    importlib.import_module("adaptcli.deploy.loading")  # what used to shadow the function by the module
    from adaptcli.deploy import load, read_header

    out = tmp_path / "arc.safetensors"
    result = adaptcli.export_run(runs.get("arc"), out, "merge")
    model = load(out)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert not hasattr(model, "adaptcli_export")  # the header is read_header's, not patched onto the model
    assert read_header(out)["format"] == ExportMode.MERGE.header_format == result.format
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(inputs), adaptcli.load(out)(inputs))


def test_export_run_passes_the_format_through(runs, tmp_path):
    out = tmp_path / "arc-timm"
    result = adaptcli.export_run(runs.get("arc"), out, "merge", "timm")
    assert out.is_dir() and {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    assert result.file_format == "timm" and result.mode is ExportMode.MERGE
    assert result.check == "timm.create_model check" and result.max_abs_diff is not None
    assert result.use and "local-dir:" in result.use[0]


def test_export_result_is_typed_and_its_json_keeps_the_keys(runs, tmp_path):
    out = tmp_path / "task.safetensors"
    merged = adaptcli.export_run(runs.get("arc"), tmp_path / "m.safetensors", "merge").to_dict()
    assert OLD_KEYS <= set(merged) and merged["mode"] == "merge" and merged["create_kwargs"]["num_classes"] == 3
    adapter = adaptcli.export_run(runs.get("arc"), out, ExportMode.ADAPTER_ONLY)
    assert adapter.create_kwargs is None and adapter.backbone_file is not None
    assert adapter.check == ExportMode.ADAPTER_ONLY.check
    assert json.loads(json.dumps(adapter.to_dict()))["mode"] == "adapter-only"


def test_load_takes_every_export_pytorch_runs(runs, tmp_path):
    """``adaptcli.load`` asks the format registry: files and folders alike give the run's logits (within the
    1e-4 every export's own check allows; the merge folds LoRA into the weights in another float32 order)."""
    from adaptcli.deploy.check import TOLERANCE
    from tests.export.test_timm_folder import run_logits

    run = runs.get("lora")
    backbone = run / "backbone.safetensors"
    exports = {}
    for name, mode, fmt in (("m.safetensors", "merge", "safetensors"), ("a.safetensors", "adapter-only", "safetensors"),
                            ("timm-folder", "merge", "timm"), ("peft-folder", "adapter-only", "peft")):
        exports[name] = adaptcli.export_run(run, tmp_path / name, mode, fmt).mode
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    expected, _ = run_logits(run, inputs)
    for name, mode in exports.items():
        model = adaptcli.load(tmp_path / name, backbone=backbone if mode is ExportMode.ADAPTER_ONLY else None)
        assert not model.training, name
        with torch.no_grad():
            assert (model(inputs) - expected).abs().max() <= TOLERANCE, name
