"""The command-line surface: help without torch, version, inspect-params numbers, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from adaptcli import __version__
from adaptcli.cli import app

runner = CliRunner()


def inspect(*args: str) -> dict:
    result = runner.invoke(app, ["inspect-params", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from adaptcli.cli import app\n"
        "for cmd in ([], ['prepare'], ['finetune'], ['eval'], ['export'], ['inspect-params'], ['demo']):\n"
        "    r = CliRunner().invoke(app, [*cmd, '--help'])\n"
        "    assert r.exit_code == 0, r.output\n"
        "    assert 'Example' in r.output or not cmd, cmd\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
        "assert 'timm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_and_module_entry_point():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    proc = subprocess.run([sys.executable, "-m", "adaptcli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


ADAPTFORMER_TABLE_3A = {1: 161_466, 4: 216_798, 16: 438_126, 32: 733_230, 64: 1_323_438,
                        128: 2_503_854, 256: 4_864_686, 512: 9_586_350}


@pytest.mark.parametrize("mid_dim, trainable", sorted(ADAPTFORMER_TABLE_3A.items()))
def test_adaptformer_table_3a(mid_dim, trainable):
    report = inspect("--model", "vit_base_patch16_224", "--method", "adaptformer", "--num-classes", "174",
                     "--set", f"method.mid_dim={mid_dim}")
    assert report["trainable_params"] == trainable
    assert report["head_params"] == 768 * 174 + 174
    assert report["backbone_params"] == 85_798_656
    assert report["mergeable"] is False
    if mid_dim == 64:
        assert report["method_params"] == 1_189_632


@pytest.mark.parametrize("method, params", [("arc", 96_432), ("arc_att", 48_216)])
def test_arc_parameters(method, params):
    report = inspect("--model", "vit_base_patch16_224", "--method", method, "--num-classes", "100")
    assert report["method_params"] == params and report["mergeable"] is True


@pytest.mark.parametrize("method, params, mergeable", [
    ("bitfit", 102_912, True), ("ssf", 205_824, True), ("adapter_plus", 165_984, False), ("zeroi2v", 14_201_856, True),
])
def test_methods_since_the_papers_count_exactly(method, params, mergeable):
    report = inspect("--model", "vit_base_patch16_224", "--method", method, "--num-classes", "100")
    assert report["method_params"] == params and report["mergeable"] is mergeable
    assert report["trainable_params"] == params + 768 * 100 + 100
    # BitFit's biases are the backbone's own: counted as the method's, not twice.
    assert report["backbone_params"] + report["method_params"] == 85_798_656 + (params if method != "bitfit" else 0)


@pytest.mark.parametrize("method, params", [("lora", 12 * (768 * 8 + 8 * 2304)), ("dora", 322_560)])
def test_lora_family_counts_exactly(method, params):
    report = inspect("--model", "vit_base_patch16_224", "--method", method, "--num-classes", "100")
    assert report["method_params"] == params == 294_912 + (12 * 2304 if method == "dora" else 0)
    assert report["backbone_params"] == 85_798_656 and report["mergeable"] is True


@pytest.mark.parametrize("method, params", [("lora", 12 * 2 * 8 * (768 + 768)), ("dora", 313_344)])
def test_lora_split_q_k_counts_exactly(method, params):
    # method.qkv=split, split_targets [q, k] (the default), r 8 each: 2 x 8 x (768 + 768) per block, the same
    # as one rank-8 update of the fused qkv; DoRA adds one magnitude per adapted row (2 x 768 per block).
    report = inspect("--model", "vit_base_patch16_224", "--method", method, "--num-classes", "100",
                     "--set", "method.qkv=split")
    assert report["method_params"] == params == 294_912 + (12 * 2 * 768 if method == "dora" else 0)
    assert report["trainable_params"] == params + 76_900 and report["mergeable"] is True


def test_any_peft_tuner_by_name():
    report = inspect("--model", "vit_base_patch16_224", "--method", "peft", "--num-classes", "10",
                     "--set", "method.peft_type=VERA", "--set", "method.peft_config={r: 256, target_modules: [qkv, fc1]}")
    # VeRA trains two vectors per target (d: r, b: out); its shared random matrices are frozen buffers.
    assert report["method_params"] == 12 * ((256 + 2304) + (256 + 3072))
    assert report["backbone_params"] == 85_798_656


@pytest.mark.parametrize("setting, message", [
    ("method.peft_type=VERAA", "did you mean 'VERA'?); choose one of"),
    ("method.peft_type=PROMPT_TUNING", "not a peft tuner"),
    ("method.peft_config={rr: 4}", "LoraConfig has no option 'rr' (did you mean 'r'?); valid: "),
    ("method.peft_config={target_modules: [nope]}", "Target modules {'nope'} not found"),
    ("method.peft_config=3", "expected a mapping"),
    ("method.peft_config={r: 1000000}", "method.peft_config.r=1e+06 would add about"),
    ("method.peft_config={r: 0}", "method.peft_config.r=0: a rank must be at least 1"),
    ("method.peft_config={target_modules: {a: [1, {b: 2}]}}", "is not what LoraConfig takes ("),
    ("method.peft_config={lora_dropout: [0.1]}", "method.peft_config.lora_dropout: [0.1] is not what LoraConfig takes"),
    ("method.peft_config={r: four}", "method.peft_config.r: four is not what LoraConfig takes (int)"),
])
def test_bad_peft_options_are_one_line(setting, message):
    result = runner.invoke(app, ["inspect-params", "--model", "test_vit", "--num-classes", "3", "--method", "peft",
                                 "--set", setting])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_tuner_whose_own_default_rank_is_0_keeps_it():
    """OFT's ``r`` defaults to 0 (its ``oft_block_size`` sizes the blocks instead): peft's default config and a
    block size of the user's run; peft's own check still refuses neither being set."""
    for config in ("{}", "{oft_block_size: 16}"):
        result = runner.invoke(app, ["inspect-params", "--model", "test_vit", "--num-classes", "3", "--method", "peft",
                                     "--set", "method.peft_type=OFT", "--set", f"method.peft_config={config}", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["method_params"] > 0
    refused = runner.invoke(app, ["inspect-params", "--model", "test_vit", "--num-classes", "3", "--method", "peft",
                                  "--set", "method.peft_type=OFT", "--set", "method.peft_config={r: 0, oft_block_size: 0}"])
    assert refused.exit_code == 2 and "must be non-zero" in refused.output, refused.output


def test_a_tuner_whose_injection_reads_weights_is_counted_on_random_weights():
    """peft's SHiRA picks its sparse entries with torch.nonzero, which the meta device cannot run: inspect-params
    counts it on random weights; --flops (meta only) says so in one line."""
    args = ["inspect-params", "--model", "test_vit", "--num-classes", "3", "--method", "peft",
            "--set", "method.peft_type=SHIRA", "--set", "model.img_size=32"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["method_params"] > 0
    flops = runner.invoke(app, [*args, "--flops"])
    assert flops.exit_code == 2 and "--flops counts on the meta device" in flops.output, flops.output
    assert len(flops.output.strip().splitlines()) == 1


def test_bitfit_follows_the_baselines_rule_on_swin():
    """Every tensor named *bias* (VPT/NOAH/V-PETL's BitFit baselines): Swin-B's relative position bias
    tables included, 200,760 with 100 classes; ViT-B's count is its .bias vectors."""
    swin = inspect("--model", "swin_base_patch4_window7_224", "--method", "bitfit", "--num-classes", "100")
    assert swin["method_params"] == 200_760
    vit = inspect("--model", "vit_base_patch16_224", "--method", "bitfit", "--num-classes", "100")
    assert vit["method_params"] == 102_912
    # Video Swin-B: per block 11 C of biases (norms, qkv, proj, fc1, fc2) and a (2x8-1)(2x7-1)(2x7-1) x heads
    # relative position table; the embedding's conv and norm biases, the merging norms (4 C; the reduction
    # has no bias) and the final norm
    video = inspect("--model", "swin3d_b", "--method", "bitfit", "--num-classes", "100")
    widths, heads, depths = (128, 256, 512, 1024), (4, 8, 16, 32), (2, 2, 18, 2)
    blocks = sum(d * (11 * c + 15 * 13 * 13 * h) for c, h, d in zip(widths, heads, depths))
    assert video["method_params"] == blocks + 2 * 128 + 4 * (128 + 256 + 512) + 1024 == 1_090_376


@pytest.mark.parametrize("model, params, mergeable, sets", [
    # dongzelian/SSF models/swin_transformer.py as it runs: PatchEmbed's ssf_scale_1/2 (2 x 2 x 128), per block
    # norm1, qkv, proj, norm2, fc1, fc2 (2 x 11 C), the final norm (2 x 1024) = 267,264; BasicLayer (line 477)
    # passes PatchMerging a list as tuning_mode, so its `tuning_mode == 'ssf'` (line 397) never holds
    ("swin_base_patch4_window7_224", 267_264, True, []), ("swin3d_b", 267_264, True, []),
    # as written: merging norms 2 x 4 x (128 + 256 + 512) = 7,168 more
    ("swin_base_patch4_window7_224", 274_432, True, ["--set", "method.patch_merging=true"]),
    ("swin3d_b", 274_432, True, ["--set", "method.patch_merging=true"]),
    # mean pooling: the pooled site before the frozen fc_norm replaces the final norm's 2 x 768
    ("video_vit_base_patch16", 205_824, False, []),
])
def test_ssf_sits_where_the_paper_puts_it(model, params, mergeable, sets):
    report = inspect("--model", model, "--method", "ssf", "--num-classes", "100", *sets)
    assert report["method_params"] == params and report["mergeable"] is mergeable
    width = 1024 if "swin" in model else 768
    assert report["trainable_params"] == params + width * 100 + 100  # no fc_norm: it stays frozen


def test_bitfit_on_the_video_vit_counts_no_key_bias():
    """VideoMAE's layout has q and v biases only: 12 x (2 x 768 + 4 x 768 + 3,072) + 768 = 92,928, which is
    ViT-B's 102,912 less the 12 x 768 key biases and the final norm's 768 (mean pooling: fc_norm is head, of
    which the baselines' rule trains the bias only)."""
    video = inspect("--model", "video_vit_base_patch16", "--method", "bitfit", "--num-classes", "174")
    assert video["method_params"] == 92_928
    assert video["trainable_params"] == 92_928 + 174 * 768 + 174 + 768  # head and fc_norm.bias


def test_vpt_deep_one_token():
    report = inspect("--model", "vit_base_patch16_224", "--method", "vpt_deep", "--num-classes", "10",
                     "--set", "method.tokens=1")
    assert report["method_params"] == 9_216


@pytest.mark.parametrize("classes", [10, 174])
def test_linear_probe(classes):
    report = inspect("--model", "vit_base_patch16_224", "--method", "linear", "--num-classes", str(classes))
    assert report["trainable_params"] == report["head_params"] == 768 * classes + classes
    assert report["method_params"] == 0


@pytest.mark.parametrize("depth,params", [(4, 27_761_664), (1, 6_498_048)])
def test_attentive_probe_counts(depth, params):
    """D = 768: the query D, each self-attention block 12 D^2 + 13 D, the cross-attention block (q, kv, MLP,
    two norms; no output projection) 11 D^2 + 12 D."""
    report = inspect("--model", "vit_base_patch16_224", "--method", "attentive_probe", "--num-classes", "100",
                     "--set", f"method.depth={depth}")
    d = 768
    assert report["method_params"] == params == d + (depth - 1) * (12 * d * d + 13 * d) + 11 * d * d + 12 * d
    assert report["trainable_params"] == params + 76_900 and report["mergeable"] is False


@pytest.mark.parametrize("model,setting,message", [
    ("vit_base_patch16_siglip_224", "method.depth=4",
     "already pools with a pretrained attention head (SigLIP's MAP), which the attentive probe would replace; "
     "use --method linear on it"),
    ("vit_base_patch16_224", "method.heads=7", "method.heads=7 does not divide the backbone's width 768; "
     "set method.heads to a divisor of 768"),
    ("swin_tiny_patch4_window7_224", "method.depth=4", "attentive_probe needs a ViT that outputs tokens"),
])
def test_attentive_probe_refusals_are_one_line(model, setting, message):
    result = runner.invoke(app, ["inspect-params", "--model", model, "--num-classes", "3", "--method",
                                 "attentive_probe", "--set", setting])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_full_vit_b_1000_classes():
    report = inspect("--model", "vit_base_patch16_224", "--method", "full", "--num-classes", "1000")
    assert report["trainable_params"] == 86_567_656
    assert report["trainable_percent"] == pytest.approx(100 * 86_567_656 / 85_798_656, abs=1e-3)


def test_inspect_table_is_readable():
    result = runner.invoke(app, ["inspect-params", "--model", "vit_base_patch16_224", "--method", "arc",
                                 "--num-classes", "174"])
    assert result.exit_code == 0
    for text in ("backbone parameters", "85,798,656", "method parameters", "96,432", "mergeable",
                 "arc_projections"):
        assert text in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "adaptfromer"], "did you mean 'adaptformer'"),
        (["--method", "arc", "--set", "method.dims=4"], "did you mean 'method.dim'"),
        (["--method", "arc", "--model", "no_such_vit"], "unknown model 'no_such_vit'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    base = ["inspect-params", "--model", "test_vit", "--num-classes", "3"]
    result = runner.invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
