"""EVA's rank redistribution (``eva_config.rho`` > 1, peft's default 2) through ``--method peft``: the ranks the
data pass chose are recorded in the run's configuration, so a resume continues from the checkpoint without a
second pass, and every export (a peft folder loaded by ``PeftModel.from_pretrained`` in a fresh process
included) rebuilds them and equals the run (issue 33 item 5)."""

from __future__ import annotations

import json

import torch
import yaml
from safetensors.torch import load_file

from adaptcli.engine.signals import StopSignals
from tests.export.conftest import invoke
from tests.export.test_peft_variants import original_backbone, peft_logits_in_fresh_process
from tests.export.test_timm_folder import run_logits

R = 4


def eva_run(shards, out, backbone, *extra: str):
    """A rho-2 EVA run (peft's default eva_config) of two epochs, a checkpoint every 2 steps."""
    return invoke("finetune", "--method", "peft", "--recipe", "quick", "--data", shards, "--out", out,
                  "--set", "model.img_size=32", "--set", "data.workers=0", "--set", "train.epochs=2",
                  "--set", "train.max_steps_per_epoch=3", "--set", "train.save_every_steps=2",
                  "--set", "train.lr=0.05", "--set", f"model.checkpoint={backbone}",
                  "--set", "method.peft_type=LORA", "--set", f"method.peft_config={{r: {R}, init_lora_weights: eva}}",
                  *extra)


def assert_same_tensors(a, b) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def test_a_rho_2_run_records_its_ranks_resumes_without_a_second_pass_and_exports(image_shards, tmp_path,
                                                                                   monkeypatch):
    backbone = tmp_path / "vit.safetensors"
    original_backbone(backbone)
    straight = eva_run(image_shards, tmp_path / "straight", backbone)
    assert straight.exit_code == 0, straight.output
    assert "its rank redistribution (eva_config.rho) gave ranks" in straight.output, straight.output

    asked = []

    def stop_at_the_fourth_step(self, accelerator):  # as a SIGTERM after step 4 (in the second epoch)
        asked.append(1)
        self.received = "SIGTERM" if len(asked) == 4 else None
        return self.received is not None

    run = tmp_path / "run"
    with monkeypatch.context() as patched:
        patched.setattr(StopSignals, "requested", stop_at_the_fourth_step)
        stopped = eva_run(image_shards, run, backbone)
    assert stopped.exit_code == 143, stopped.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())["method"]["peft_config"]
    ranks = recorded["rank_pattern"]
    # the pass chose ranks other than r, and the recorded pattern is what the run's tensors hold
    assert ranks and any(rank != R for rank in ranks.values()), ranks
    trained = load_file(str(run / "trainable.safetensors"))
    for name in (f"blocks.{i}.attn.qkv" for i in range(6)):
        shape = trained.get(f"{name}.lora_A.default.weight")
        assert (shape.shape[0] if shape is not None else 0) == ranks.get(name, R), name

    resumed = eva_run(image_shards, run, backbone, "--resume")  # the options it started from, no pattern
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "EVA:" not in resumed.output  # no second data pass
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["peft_config"] == recorded
    for name in ("trainable.safetensors", "best.safetensors"):
        assert_same_tensors(tmp_path / "straight" / name, run / name)

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    expected, _ = run_logits(run, inputs)
    folder, adapter, merged = tmp_path / "peft", tmp_path / "adapter.safetensors", tmp_path / "merged.safetensors"
    for args in (("--adapter-only", "--format", "peft", "--out", folder),
                 ("--adapter-only", "--format", "safetensors", "--out", adapter),
                 ("--merge", "--out", merged), ("--full", "--out", tmp_path / "full.safetensors")):
        result = invoke("export", "--run", run, *args)
        assert result.exit_code == 0, result.output
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["rank_pattern"] == ranks and config["r"] == R

    assert (peft_logits_in_fresh_process(folder, backbone, inputs, tmp_path) - expected).abs().max() <= 1e-5

    import adaptcli

    with torch.no_grad():
        assert (adaptcli.load(adapter, backbone=backbone)(inputs) - expected).abs().max() <= 1e-5
        assert (adaptcli.load(merged)(inputs) - expected).abs().max() <= 1e-5
        assert (adaptcli.load(tmp_path / "full.safetensors")(inputs) - expected).abs().max() <= 1e-5
    evaluated = invoke("eval", "--run", run, "--data", image_shards)
    assert evaluated.exit_code == 0, evaluated.output


def test_a_layer_eva_gives_rank_0_stays_plain_in_the_run_and_its_exports(image_shards, tmp_path, monkeypatch):
    """peft puts a layer whose rank comes out 0 back to its base layer: the run records it in
    ``exclude_modules`` (its ``target_modules`` stay as given, so a resume that changes them is refused), and
    its exports rebuild the adapter without that layer."""
    import peft.tuners.lora.eva as peft_eva

    compute = peft_eva.get_eva_state_dict

    def block_1_at_rank_0(*args, **kwargs):
        state = compute(*args, **kwargs)
        state["base_model.model.blocks.1.attn.qkv"] = state["base_model.model.blocks.1.attn.qkv"][:0]
        return state

    backbone = tmp_path / "vit.safetensors"
    original_backbone(backbone)
    run = tmp_path / "run"
    with monkeypatch.context() as patched:
        patched.setattr(peft_eva, "get_eva_state_dict", block_1_at_rank_0)
        result = eva_run(image_shards, run, backbone)
    assert result.exit_code == 0, result.output
    assert ", 1 left plain at rank 0, recorded in the run as method.peft_config" in result.output, result.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())["method"]["peft_config"]
    # the targets stay as the user gave them (the default); the layer left plain is recorded as excluded
    assert "target_modules" not in recorded and recorded["exclude_modules"] == ["blocks.1.attn.qkv"], recorded
    trained = load_file(str(run / "trainable.safetensors"))
    assert not any(key.startswith("blocks.1.attn.qkv.lora") for key in trained)
    assert any(key.startswith("blocks.2.attn.qkv.lora") for key in trained)

    # --resume with the options it started from is this run (finished: nothing to do); another option is not
    again = eva_run(image_shards, run, backbone, "--resume")
    assert again.exit_code == 0 and "nothing to resume" in again.output, again.output
    changed = eva_run(image_shards, run, backbone, "--resume", "--set",
                     f"method.peft_config={{r: {R}, init_lora_weights: eva, lora_dropout: 0.1}}")
    assert changed.exit_code == 2 and "--resume: the configuration differs" in changed.stderr, changed.output
    assert len(changed.stderr.strip().splitlines()) == 1
    # nor other targets: the run records the layers left plain, not targets in place of the ones the user gave
    for targets in ("[qkv, fc1]", "[fc1]"):
        retargeted = eva_run(image_shards, run, backbone, "--resume", "--set",
                             f"method.peft_config={{r: {R}, init_lora_weights: eva, target_modules: {targets}}}")
        assert retargeted.exit_code == 2, retargeted.output
        assert "--resume: the configuration differs" in retargeted.stderr and "target_modules" in retargeted.stderr, \
            retargeted.output
        assert len(retargeted.stderr.strip().splitlines()) == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["peft_config"] == recorded

    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    expected, _ = run_logits(run, inputs)
    folder, merged = tmp_path / "peft", tmp_path / "merged.safetensors"
    exported = invoke("export", "--run", run, "--adapter-only", "--format", "peft", "--out", folder)
    # its check: the folder loaded by PeftModel.from_pretrained on the backbone file equals the run
    assert exported.exit_code == 0 and "PeftModel.from_pretrained check: max |difference|" in exported.output, \
        exported.output
    assert json.loads((folder / "adapter_config.json").read_text())["target_modules"]
    exported = invoke("export", "--run", run, "--merge", "--out", merged)
    assert exported.exit_code == 0, exported.output
    import adaptcli

    with torch.no_grad():
        assert (adaptcli.load(merged)(inputs) - expected).abs().max() <= 1e-5


def test_the_layers_left_plain_extend_the_users_own_exclusions_and_a_changed_one_shows():
    import re

    from adaptcli.methods.peft_tuners.eva import _excluding, as_started

    plain = ["blocks.1.attn.qkv"]
    for own in (None, ["head"], "blocks\\.0\\..*"):
        given = {"r": R, "init_lora_weights": "eva", **({} if own is None else {"exclude_modules": own})}
        recorded = {**given, "rank_pattern": {"blocks.0.attn.qkv": 6}, "exclude_modules": _excluding(own, plain)}
        assert as_started(recorded, given) == given, own
        excluded = recorded["exclude_modules"]
        if isinstance(excluded, str):  # peft matches a string in full
            assert re.fullmatch(excluded, "blocks.1.attn.qkv") and re.fullmatch(excluded, "blocks.0.attn.qkv")
            assert not re.fullmatch(excluded, "blocks.2.attn.qkv")
        else:
            assert excluded == ([] if own is None else own) + plain
        changed = {**given, "exclude_modules": ["blocks.3.attn.qkv"]}
        assert as_started(recorded, changed)["exclude_modules"] == excluded  # shown as the difference
        retargeted = {**given, "target_modules": ["fc1"]}
        assert as_started(recorded, retargeted) != retargeted
