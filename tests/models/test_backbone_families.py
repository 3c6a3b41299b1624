"""Every method on the backbone families users reach for, each as a tiny config of its own timm class.

CLIP (pre-norm, QuickGELU), DINOv2 (LayerScale) with and without register tokens, SigLIP (attention
pooling, no class token), EVA-02 (separate q/k/v, RoPE, SwiGLU; tiny/small: fused qkv with the q/v
biases apart) and DeiT-III (LayerScale, no position
for the class token): every method builds, trains two steps reaching exactly its trainable tensors,
resumes from its saved tensors and optimiser state to the same second step, reloads from its adapter
tensors to the same predictions, and merges exactly where it claims to (float64).
The CLI tests at the end run finetune, resume, every export mode and predict on each family.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.methods import adapter_state_dict, apply_method, merge_method, trainable_state_dict
from adaptcli.methods.registry import all_methods, method_spec
from tests.engine.conftest import image_shards  # noqa: F401  (a session fixture: 3 colour classes)

TINY = dict(embed_dim=32, depth=2, num_heads=2)
#: family -> (timm model whose class and options the tiny config keeps, tiny overrides)
FAMILIES: dict[str, tuple[str, dict]] = {
    "clip": ("vit_base_patch16_clip_quickgelu_224", dict(img_size=32, **TINY)),
    "dinov2": ("vit_small_patch14_dinov2", dict(img_size=28, **TINY)),
    "dinov2_reg": ("vit_small_patch14_reg4_dinov2", dict(img_size=28, **TINY)),
    "siglip": ("vit_base_patch16_siglip_224", dict(img_size=32, **TINY)),
    "eva02": ("eva02_base_patch14_224", dict(img_size=28, **TINY)),
    # EVA-02 tiny/small: a fused qkv whose q/v biases the attention adds outside the Linear.
    "eva02_fused": ("eva02_small_patch14_224", dict(img_size=28, **TINY)),
    "deit3": ("deit3_base_patch16_224", dict(img_size=32, **TINY)),
}
#: Small options: every adapter a few hundred parameters.
OPTIONS = {
    "adaptformer": dict(mid_dim=4), "arc": dict(dim=4), "arc_att": dict(dim=4), "vpt_shallow": dict(tokens=2),
    "vpt_deep": dict(tokens=2), "adapter_plus": dict(bottleneck=4), "lora": dict(r=2), "dora": dict(r=2),
    "peft": dict(peft_type="LOHA", peft_config={"r": 2}),
}
METHODS = [spec.name for spec in all_methods()]
#: (family, method) that refuse to build, with the refusal; and mergeable methods a family cannot merge.
REFUSED = {("eva02_fused", "ssf"): "adds its q/v biases outside",
           ("eva02", "zeroi2v"): "separate q/k/v or biases added outside qkv",  # the shift needs qkv run as a module
           ("eva02_fused", "zeroi2v"): "separate q/k/v or biases added outside qkv",
           ("siglip", "attentive_probe"): "already pools with a pretrained attention head"}
NOT_MERGEABLE = {
    ("clip", "ssf"),  # CLIP's patch embedding has no bias for SSF's first shift
    ("eva02", "arc"), ("eva02", "arc_att"), ("eva02", "ssf"),  # k_proj has no bias; RoPE keeps a key shift
    ("eva02_fused", "arc"), ("eva02_fused", "arc_att"),  # its qkv Linear has no bias (the biases are apart)
}
NUM_CLASSES = 3


def plain(family: str, seed: int = 0) -> nn.Module:
    name, kwargs = FAMILIES[family]
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kwargs).eval()


def adapted(family: str, method: str, seed: int = 0):
    model = plain(family, seed)
    info = apply_method(model, method, method_spec(method).options(**OPTIONS.get(method, {})))
    return model.eval(), info  # the method's new modules (dropout, the probe's BatchNorm) too


def batch(family: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    size = FAMILIES[family][1]["img_size"]
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, size, size, generator=generator), torch.arange(4) % NUM_CLASSES


def optimiser(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)


def step(model: nn.Module, opt: torch.optim.Optimizer, family: str, seed: int) -> None:
    model.train()
    x, labels = batch(family, seed)
    torch.manual_seed(seed)  # the same dropout masks in a resumed step (a run restores its random state)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), labels).backward()
    opt.step()
    model.eval()


CASES = [(f, m) for f in FAMILIES for m in METHODS]


@pytest.mark.parametrize("family,method", CASES)
def test_method_trains_resumes_reloads_and_merges(family: str, method: str) -> None:
    if (family, method) in REFUSED:
        with pytest.raises(UnsupportedModelError, match=REFUSED[family, method]):
            adapted(family, method)
        return
    model, info = adapted(family, method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and (method == "full") == (trainable == {n for n, _ in model.named_parameters()})

    # Two steps: the gradient reaches exactly the trainable tensors, and the second moves them again.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = optimiser(model)
    step(model, opt, family, seed=1)
    for name, param in model.named_parameters():
        assert (param.grad is not None) == (name in trainable), name
    saved, saved_opt = copy.deepcopy(trainable_state_dict(model, info)), copy.deepcopy(opt.state_dict())
    after_one = {n: p.detach().clone() for n, p in model.named_parameters()}
    step(model, opt, family, seed=2)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any(not torch.equal(p, after_one[n]) for n, p in model.named_parameters() if n in trainable)
    x, _ = batch(family, seed=5)
    with torch.no_grad():
        run_logits = model(x)

    # Resume: a fresh adapted model with the step-1 tensors and optimiser state takes the same step 2.
    resumed, _ = adapted(family, method, seed=9 if method == "full" else 0)
    missing, unexpected = resumed.load_state_dict(saved, strict=False)
    assert not unexpected and not set(missing) & trainable
    resumed_opt = optimiser(resumed)
    resumed_opt.load_state_dict(saved_opt)
    step(resumed, resumed_opt, family, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(resumed(x), run_logits, rtol=0, atol=1e-6)

    # Adapter tensors onto a fresh copy of the same backbone: the run's predictions.
    reloaded, _ = adapted(family, method)
    if method == "full":
        reloaded.load_state_dict(model.state_dict())
    else:
        reloaded.load_state_dict(adapter_state_dict(model, info), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), run_logits, rtol=0, atol=1e-6)

    # Merge (float64): exact, into the plain architecture with timm's own key names.
    if not method_spec(method).mergeable:
        return
    if (family, method) in NOT_MERGEABLE:
        assert not info.mergeable
        with pytest.raises(NotMergeableError, match="--full or --adapter-only"):
            merge_method(model, info)
        return
    assert info.mergeable
    model.double()
    with torch.no_grad():
        unmerged = model(x.double())
        merged = merge_method(model, info)
        target = plain(family).double()
        target.load_state_dict(merged.state_dict(), strict=True)
        assert (unmerged - run_logits.double()).abs().max() < 1e-4
        torch.testing.assert_close(target(x.double()), unmerged, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- the CLI on each family
#: One method per family through finetune, --resume, every export mode and predict (all in this process:
#: the tiny configs are registered with timm here, under these names).
CLI_CASES = {"clip": "lora", "dinov2": "adaptformer", "dinov2_reg": "vpt_deep", "siglip": "bitfit",
             "eva02": "lora", "eva02_fused": "dora", "deit3": "ssf"}
CLI_OPTIONS = {"lora": ["--set", "method.r=2"], "dora": ["--set", "method.r=2"], "adaptformer": ["--set", "method.mid_dim=4"],
               "vpt_deep": ["--set", "method.tokens=2"]}


def tiny_name(family: str) -> str:
    return f"tiny_family_{family}"


def register_tiny(family: str) -> str:
    """Register the family's tiny config with timm (idempotent) and return its name."""
    from timm.models import register_model

    name = tiny_name(family)
    if not timm.is_model(name):
        base, kwargs = FAMILIES[family]

        def create(pretrained: bool = False, **overrides):
            return timm.create_model(base, pretrained=False, **{**kwargs, **overrides})

        create.__name__ = create.__qualname__ = name
        register_model(create)
    return name


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """A few raw images to predict."""
    from PIL import Image

    from tests.engine.conftest import colour_images

    folder = tmp_path_factory.mktemp("pictures")
    for index, image in enumerate(colour_images(3, (200, 40, 40), seed=4) + colour_images(3, (40, 40, 200), seed=5)):
        Image.fromarray(image).save(folder / f"{index}.png")
    return folder


def predictions(*args) -> list[dict]:
    from tests.export.conftest import invoke

    out = Path(args[-1])
    result = invoke("predict", *args[:-1], "--no-progress", "--top-k", "3", "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows
    return rows


def same_predictions(a: list[dict], b: list[dict]) -> None:
    """The same files, classes in the same order, scores equal up to the files' rounding."""
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        assert [c["class"] for c in x["top"]] == [c["class"] for c in y["top"]], (x, y)
        assert [c["score"] for c in x["top"]] == pytest.approx([c["score"] for c in y["top"]], abs=1e-4), (x, y)


@pytest.mark.parametrize("family", list(CLI_CASES))
def test_cli_finetunes_resumes_exports_and_predicts(family, image_shards, pictures, tmp_path):
    from adaptcli.io import read_safetensors
    from adaptcli.runs.folder import RunDir
    from tests.export.conftest import invoke

    method = CLI_CASES[family]
    model = register_tiny(family)
    size = str(FAMILIES[family][1]["img_size"])
    args = ["finetune", "--method", method, "--model", model, "--recipe", "quick", "--data", image_shards,
            "--set", f"model.img_size={size}", "--set", "data.workers=0", "--set", "train.epochs=2",
            "--set", "train.max_steps_per_epoch=1", "--set", "train.keep_checkpoints=2", *CLI_OPTIONS.get(method, [])]
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    for out in (straight, cut):
        result = invoke(*args, "--out", out)
        assert result.exit_code == 0, result.output

    # Resume: the second run loses its last epoch (as if stopped after the first) and resumes to the same end.
    run = RunDir(cut)
    assert len(run.checkpoint_dirs()) == 2
    shutil.rmtree(run.checkpoint_dirs()[-1])
    run.summary_file.unlink()
    run.set_state("interrupted")
    resumed = invoke(*args, "--out", cut, "--resume")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output
    a, _ = read_safetensors(straight / "trainable.safetensors")
    b, _ = read_safetensors(cut / "trainable.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    # Every export mode the method supports predicts what the run predicts.
    expected = predictions(straight, pictures, tmp_path / "run.jsonl")
    modes = ["full", "adapter-only"] + (["merge"] if method_spec(method).mergeable else [])
    for mode in modes:
        out = tmp_path / f"{mode}.safetensors"
        result = invoke("export", "--run", straight, f"--{mode}", "--out", out)
        assert result.exit_code == 0, result.output
        backbone = ["--backbone", straight / "backbone.safetensors"] if mode == "adapter-only" else []
        same_predictions(predictions(out, pictures, *backbone, tmp_path / f"{mode}.jsonl"), expected)
    if not method_spec(method).mergeable:
        refused = invoke("export", "--run", straight, "--merge", "--out", tmp_path / "merged.safetensors")
        assert refused.exit_code == 2 and "cannot be merged" in refused.output


def test_inspect_params_counts_lora_on_eva02_base():
    """The real EVA-02 base (no weights): LoRA finds its separate q/k/v, rank 8 each."""
    from tests.export.conftest import invoke

    result = invoke("inspect-params", "--model", "eva02_base_patch14_224", "--method", "lora", "--num-classes", "100",
                    "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["method_params"] == 12 * 3 * 8 * (768 + 768) and report["mergeable"]
    assert {"blocks.*.attn.q_proj", "blocks.*.attn.k_proj", "blocks.*.attn.v_proj"} <= set(report["trainable_locations"])
    # its fc_norm trains with the head: a backbone parameter that trains, so the parts add up to the total
    assert report["backbone_trained_params"] == 2 * 768 == report["trainable_locations"]["fc_norm"]
    assert report["trainable_params"] == report["method_params"] + report["head_params"] + 2 * 768
    table = invoke("inspect-params", "--model", "eva02_base_patch14_224", "--method", "lora", "--num-classes", "100")
    assert "backbone parameters trained  1,536" in table.output


def test_a_distilled_deit_with_two_heads_is_refused_in_one_line():
    """timm's distilled DeiT averages a class and a distillation head; adaptcli adapts one head."""
    from tests.export.conftest import invoke

    for method in ("lora", "zeroi2v", "linear"):
        result = invoke("inspect-params", "--model", "deit_tiny_distilled_patch16_224", "--method", method,
                        "--num-classes", "10")
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert "2 classifier heads" in result.output and "deit3_base_patch16_224" in result.output
