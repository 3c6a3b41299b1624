"""peft's newer LoRA variants through ``--method peft``: PiSSA and OLoRA keep the user's backbone and export as
adapters of it (issue 33 item 5)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from tests.export.conftest import finetune, invoke
from tests.export.test_peft_format import LOADER
from tests.export.test_timm_folder import ROOT, run_logits

KWARGS = {"num_classes": 3, "img_size": 32}  # the runs' create_kwargs (TINY: 32 px, 3 colours)


def original_backbone(path) -> dict[str, torch.Tensor]:
    """The user's backbone file: a timm state dict (not the run's), trained from with --checkpoint."""
    torch.manual_seed(11)
    state = {k: v.contiguous() for k, v in timm.create_model("test_vit", **KWARGS).state_dict().items()}
    save_file(state, str(path))
    return state


def peft_logits_in_fresh_process(folder, backbone, inputs: torch.Tensor, tmp_path) -> torch.Tensor:
    """Logits of ``inputs`` from the peft ``folder`` loaded by ``PeftModel.from_pretrained`` onto the original
    ``backbone`` file in a new interpreter (nothing of this process's imports or state)."""
    save_file({"x": inputs}, str(tmp_path / "inputs.safetensors"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LOADER, str(folder), str(backbone), json.dumps(KWARGS),
                           str(tmp_path / "inputs.safetensors"), str(tmp_path / "logits.safetensors")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(str(tmp_path / "logits.safetensors"))["logits"]


def peft_run(shards, out, init: str, *extra: str):
    return finetune(shards, out, "peft", "--set", "method.peft_type=LORA",
                    "--set", f"method.peft_config={{r: 4, lora_alpha: 8, init_lora_weights: {init}}}",
                    "--set", "train.lr=0.05", *extra)


@pytest.mark.parametrize("init", ["pissa", "olora", "pissa_niter_4"])  # pissa_niter_K: as docs/methods.md offers it
def test_pissa_and_olora_export_onto_the_original_backbone(image_shards, tmp_path, init):
    backbone = tmp_path / "vit.safetensors"
    original = original_backbone(backbone)
    run = peft_run(image_shards, tmp_path / "run", init, "--set", f"model.checkpoint={backbone}")
    trained = load_file(str(run / "trainable.safetensors"))
    # Two steps moved the adapter away from its initial factors (kept as frozen buffers).
    assert (trained["blocks.0.attn.qkv.lora_A.default.weight"]
            - trained["blocks.0.attn.qkv.init_offset.A"]).abs().max() > 1e-4
    after = load_file(str(backbone))  # the user's file is untouched
    assert after.keys() == original.keys() and all(torch.equal(after[k], v) for k, v in original.items())

    folder, adapter = tmp_path / "peft", tmp_path / "adapter.safetensors"
    for out, fmt in ((folder, "peft"), (adapter, "safetensors")):
        result = invoke("export", "--run", run, "--adapter-only", "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["init_lora_weights"] is True and config["r"] == 8 and config["lora_alpha"] == 16

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    expected, _ = run_logits(run, inputs)
    assert (peft_logits_in_fresh_process(folder, backbone, inputs, tmp_path) - expected).abs().max() <= 1e-5

    import adaptcli

    with torch.no_grad():
        attached = adaptcli.load(adapter, backbone=backbone)(inputs)
    assert (attached - expected).abs().max() <= 1e-5


def test_a_pissa_run_keeps_the_original_weights_and_merges_exactly(image_shards, tmp_path):
    torch.manual_seed(0)
    run = peft_run(image_shards, tmp_path / "run", "pissa")
    kept = load_file(str(run / "backbone.safetensors"))
    # The kept backbone is the one the run started from (train.seed's draw), not PiSSA's residual W - s B0 A0.
    from adaptcli.runs.folder import RunDir

    config = RunDir(run).config()
    torch.manual_seed(config.train.seed)
    drawn = timm.create_model("test_vit", **KWARGS).state_dict()
    assert torch.equal(kept["blocks.0.attn.qkv.weight"], drawn["blocks.0.attn.qkv.weight"])

    merged = tmp_path / "merged.safetensors"
    result = invoke("export", "--run", run, "--merge", "--out", merged)
    assert result.exit_code == 0, result.output
    # peft's folder on the kept (original) backbone: export checks it against the run, as the use: lines load it
    result = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", tmp_path / "peft")
    assert result.exit_code == 0 and "PeftModel.from_pretrained check: max |difference|" in result.output, result.output
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    expected, _ = run_logits(run, inputs)
    import adaptcli

    with torch.no_grad():
        assert (adaptcli.load(merged)(inputs) - expected).abs().max() <= 1e-5


def test_eva_sets_a_as_peft_computes_it_on_the_plain_backbone_in_float64():
    """Each A is what peft's own EVA (``get_eva_state_dict`` on the plain backbone, its path for models that are
    not PeftModels) computes from the same batches: the principal directions of the layer's inputs; B is zero."""
    from peft import EvaConfig, LoraConfig
    from peft.tuners.lora.eva import get_eva_state_dict

    from adaptcli.methods.apply import apply_method
    from adaptcli.methods.peft_tuners.config import PeftOptions
    from adaptcli.methods.peft_tuners.eva import initialise_eva

    torch.manual_seed(0)
    plain = timm.create_model("test_vit", **KWARGS).double().eval()
    model = copy.deepcopy(plain)
    apply_method(model, "peft", PeftOptions("LORA", {"r": 4, "init_lora_weights": "eva", "eva_config": {"rho": 1}}))
    batches = [torch.randn(8, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
               for s in range(3)]
    config = LoraConfig(r=4, target_modules=["qkv"], init_lora_weights="eva", eva_config=EvaConfig(rho=1))
    expected = get_eva_state_dict(plain, batches, config, forward_fn=lambda m, x: m(x), prepare_model_inputs_fn=None,
                                  prepare_layer_inputs_fn=None, show_progress_bar=False)
    layer = model.blocks[1].attn.qkv
    before = layer.lora_A["default"].weight.detach().clone()
    assert initialise_eva(model, batches) == 6
    for name, components in expected.items():
        assert torch.equal(model.get_submodule(name).lora_A["default"].weight, components.to(torch.float64)), name
    a = layer.lora_A["default"].weight.detach()
    assert not torch.allclose(a, before) and not layer.lora_B["default"].weight.any()
    # and they are the principal directions: the first one as an exact SVD of all the inputs finds it
    seen = []
    handle = layer.base_layer.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    model(torch.cat(batches))
    handle.remove()
    x = seen[0].reshape(-1, seen[0].shape[-1])
    _, _, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    assert abs(torch.nn.functional.cosine_similarity(a[0], vh[0], dim=0)) > 0.99


def test_an_eva_run_makes_its_data_pass_and_exports_onto_its_backbone(image_shards, tmp_path):
    run = tmp_path / "eva"
    result = invoke("finetune", "--method", "peft", "--recipe", "quick", "--data", image_shards, "--out", run,
                    "--set", "model.img_size=32", "--set", "data.workers=0", "--set", "train.epochs=1",
                    "--set", "train.max_steps_per_epoch=2", "--set", "method.peft_type=LORA",
                    "--set", "method.peft_config={r: 4, init_lora_weights: eva, eva_config: {rho: 1}}")
    assert result.exit_code == 0, result.output
    assert "EVA: 6 LoRA layers start from the principal directions" in result.output
    folder = tmp_path / "eva-peft"
    exported = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", folder)
    assert exported.exit_code == 0, exported.output  # its check: the folder on the run's backbone equals the run
    assert "PeftModel.from_pretrained check: max |difference|" in exported.output


@pytest.mark.parametrize("setting, message", [
    ("{init_lora_weights: corda}", "init_lora_weights=corda: CorDA builds each adapter from a pass over data"),
    ("{init_lora_weights: loftq}", "init_lora_weights=loftq: LoftQ quantises the base weights"),
    ("{init_lora_weights: pissa, use_dora: true}", "with use_dora: DoRA's magnitudes are computed on peft's"),
])
def test_what_needs_more_than_injection_is_refused_in_one_line(image_shards, tmp_path, setting, message):
    out = tmp_path / "run"
    result = invoke("finetune", "--method", "peft", "--recipe", "quick", "--data", image_shards, "--out", out,
                    "--set", "model.img_size=32", "--set", "method.peft_type=LORA",
                    "--set", f"method.peft_config={setting}")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_adalora_is_refused_in_one_line(image_shards, tmp_path):
    result = invoke("finetune", "--method", "peft", "--recipe", "quick", "--data", image_shards,
                    "--out", tmp_path / "run", "--set", "method.peft_type=ADALORA")
    assert result.exit_code == 2 and "AdaLoRA reallocates ranks during training" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_tuner_whose_injection_reads_weights_passes_the_dry_run_and_trains(image_shards, tmp_path):
    """SHiRA (torch.nonzero at injection) cannot be built on the meta device the checks use: they build it on
    random weights, so the dry run and the run start."""
    out = tmp_path / "run"
    dry = invoke("finetune", "--method", "peft", "--recipe", "quick", "--data", image_shards, "--out", out,
                 "--set", "model.img_size=32", "--set", "data.workers=0", "--set", "method.peft_type=SHIRA", "--dry-run")
    assert dry.exit_code == 0, dry.output
    run = finetune(image_shards, out, "peft", "--set", "method.peft_type=SHIRA")
    assert (run / "trainable.safetensors").exists()
