"""Forward latency of the plain backbone, merged ARC, unmerged ARC and AdaptFormer, side by side.

    python benchmarks/inference.py                       # ViT-S/16 at 224, batch 1 and 32, 2 threads
    python benchmarks/inference.py --model vit_base_patch16_224 --rounds 5
    python benchmarks/inference.py --write-docs          # also (re)writes "## Inference" in docs/performance.md
    python benchmarks/inference.py --quick               # smoke run: timm's tiny test_vit, batch 1, 2 rounds

Weights are random (no download); adapters are set away from identity. The four models are timed
interleaved (one forward of each per round, A B C D A B C D ...) so drift hits them alike; the
median and the minimum over rounds are reported with their ratios to the plain backbone.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
from pathlib import Path

import torch
from measure import count_flops, cuda_sync, time_interleaved
from torch import nn

DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
SECTION = "## Inference"


def build(name: str, arc_dim: int, mid_dim: int) -> dict[str, nn.Module]:
    """The four models, in eval mode, adapters randomised (a zero adapter would be trivially cheap to merge)."""
    import timm

    from adaptcli.methods.adaptformer.config import AdaptFormerOptions
    from adaptcli.methods.apply import apply_method, merge_method
    from adaptcli.methods.arc.config import ArcOptions

    torch.manual_seed(0)
    plain = timm.create_model(name, num_classes=100).eval()
    arc, adaptformer = copy.deepcopy(plain), copy.deepcopy(plain)
    arc_info = apply_method(arc, "arc", ArcOptions(dim=arc_dim))
    apply_method(adaptformer, "adaptformer", AdaptFormerOptions(mid_dim=mid_dim))
    with torch.no_grad():
        for model in (arc, adaptformer):
            for pname, param in model.named_parameters():
                if param.requires_grad and not pname.startswith("head"):
                    param.add_(0.02 * torch.randn_like(param))
    merged = merge_method(copy.deepcopy(arc), arc_info)
    return {"plain": plain, "arc merged": merged.eval(), "arc unmerged": arc.eval(), "adaptformer": adaptformer.eval()}


@torch.inference_mode()
def time_models(models: dict[str, nn.Module], batch: torch.Tensor, rounds: int, warmup: int,
                clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per forward for each model, interleaved; ``clock="cpu"`` counts this process's CPU time only."""
    steps = {name: (lambda model=model: model(batch)) for name, model in models.items()}
    wall, cpu = time_interleaved(steps, rounds, warmup, sync=cuda_sync(batch.device))
    return cpu if clock == "cpu" else wall


@torch.inference_mode()
def flop_ratios(models: dict[str, nn.Module], batch: torch.Tensor) -> dict[str, float]:
    """Matmul/conv FLOPs of each model relative to the plain backbone (exact, noise-free)."""
    flops = {name: count_flops(lambda model=model: model(batch)) for name, model in models.items()}
    return {name: value / flops["plain"] for name, value in flops.items()}


def table(results: dict[int, dict[str, list[float]]]) -> list[str]:
    """Median and minimum per model; the minimum is the better estimate on a busy machine."""
    lines = ["| batch | model | median ms | ratio (median) | min ms | ratio (min) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for batch, times in results.items():
        base_median, base_min = statistics.median(times["plain"]), min(times["plain"])
        for name, samples in times.items():
            median, fastest = statistics.median(samples), min(samples)
            lines.append(f"| {batch} | {name} | {median * 1e3:.1f} | {median / base_median:.3f}x "
                         f"| {fastest * 1e3:.1f} | {fastest / base_min:.3f}x |")
    return lines


def write_docs(command: str, machine: str, lines: list[str], check: float, flops: dict[str, float]) -> None:
    """Replace (or add) this benchmark's own section of docs/performance.md, leaving the others alone."""
    body = "\n".join([
        SECTION,
        "",
        f"`{command}` on {machine}.",
        "",
        *lines,
        "",
        f"Merged vs unmerged ARC logits: max |difference| = {check:.2e}. FLOPs relative to plain: "
        + ", ".join(f"{name} {ratio:.4f}x" for name, ratio in flops.items()) + ".",
        "",
    ])
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    if SECTION in text:
        start = text.index(SECTION)
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following < 0 else following + 1
        text = text[:start] + body + ("\n" + text[end:] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=0, help="timed rounds (default: 30 at batch 1, 7 above)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arc-dim", type=int, default=50)
    parser.add_argument("--mid-dim", type=int, default=64)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process CPU time, robust to other jobs on a shared machine (use with --threads 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: timm's tiny test_vit, batch 1, 2 rounds, 1 warm-up (numbers mean little)")
    args = parser.parse_args()
    if args.quick:
        if args.write_docs:
            parser.error("--quick numbers are not for the docs: drop --write-docs")
        args.model, args.batches, args.rounds, args.warmup, args.arc_dim, args.mid_dim = "test_vit", "1", 2, 1, 8, 8

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = {k: m.to(device) for k, m in build(args.model, args.arc_dim, args.mid_dim).items()}
    size = models["plain"].pretrained_cfg.get("input_size", (3, 224, 224))
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        probe = torch.randn(2, *size, generator=generator).to(device)
        check = float((models["arc merged"](probe) - models["arc unmerged"](probe)).abs().max())
    print(f"{args.model}, {device}, {args.threads} threads, {args.clock} clock; merged vs unmerged ARC: max |difference| = {check:.2e}")
    flops = flop_ratios(models, probe[:1])
    print("FLOPs relative to plain: " + ", ".join(f"{name} {ratio:.4f}x" for name, ratio in flops.items()))

    results = {}
    for batch_size in (int(b) for b in args.batches.split(",")):
        rounds = args.rounds or (30 if batch_size == 1 else 7)
        batch = torch.randn(batch_size, *size, generator=generator).to(device)
        results[batch_size] = time_models(models, batch, rounds, args.warmup, args.clock)
    lines = table(results)
    print("\n".join(lines))
    if args.write_docs:
        cpu = platform.processor() or platform.machine()
        machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU ({cpu}), {args.threads} threads, {args.clock} clock")
        command = " ".join(["python benchmarks/inference.py", *(a for a in sys.argv[1:] if a != "--write-docs")])
        write_docs(command, machine, lines, check, flops)
        print(f"written: {DOCS}")


if __name__ == "__main__":
    main()
