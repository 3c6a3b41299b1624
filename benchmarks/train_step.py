"""Training-step time and peak memory of every method against ``full``, and the linear-probe feature cache.

The attentive probe's frozen pass (the backbone's forward inside its training step) is timed against
``floor_frozen``, the same forward under ``no_grad``.

    python benchmarks/train_step.py                 # ViT-S/16 video, 8 frames, 224 px, batch 4
    python benchmarks/train_step.py --quick         # 112 px, fewer repeats (a couple of minutes)

Three parts, all in one run:

1. Memory. Every method gets a fresh subprocess (``ru_maxrss`` is a process-lifetime peak) that builds
   the adapted model and runs ONE training step. It reports
   - ``saved MB``: the bytes autograd keeps for the backward pass (``saved_tensors_hooks``, unique
     storages, parameters and buffers excluded): the activation memory the method costs; on a torch
     whose ``checkpoint`` lacks ``respect_saved_tensors_hooks`` (before 2.14) the tensors that selective
     recomputation keeps bypass the hooks, so ``+rc`` rows undercount (the run says so; peaks are exact);
   - ``live peak MB``: peak of bytes allocated minus freed by torch's CPU allocator during the step
     (profiler memory events): the CPU counterpart of ``max_memory_allocated``; memory goals use it;
   - ``dRSS MB``: peak RSS during the step minus RSS just before it: activations plus gradients,
     optimizer state and temporaries, as the OS sees them (noisier: allocator behaviour);
   - on a GPU, ``torch.cuda.max_memory_allocated`` during the step instead of RSS.
2. Time. FLOPs of forward + backward are counted on the meta device (noise-free). All models live in
   this process; time runs on ``--threads`` intra-op threads (default 1) and is read as wall and process
   CPU time (goals use CPU time: on a shared machine it measures work, not scheduling); after warm-up steps, one training step per method
   (forward, cross-entropy, backward, SGD step, zero_grad) is timed in interleaved rounds
   (A B C ... A B C ..., alternate rounds reversed), and the median is reported.
3. PACE (``train.pace_lambda``/``pace_sigma``, docs/methods.md): ``<method>+pace`` cases run adaptcli's two
   noisy passes and consistency loss; their second pass is measured against its floor, the same method's
   one-pass step, timed side by side in the same interleaved rounds. The attentive probe's grid
   (``method.lrs`` x ``weight_decays``): ``attentive_probe_grid4`` trains 4 probes on one frozen pass
   (adaptcli's ``ProbeGrid``, the losses summed) against the one-probe step; 4 separate runs would be 4x.
4. Linear probe. The real ``adaptcli finetune --method linear`` on small prepared video shards, 20
   epochs, with ``train.feature_cache=false`` and ``=true``; ``train_seconds`` from ``summary.json``.

Every model is built through adaptcli's own code: ``create_backbone`` + ``apply_method``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import count_flops, cuda_sync, time_interleaved


# --------------------------------------------------------------------------- the cases


@dataclass
class Case:
    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    floor_goal: float | None = None  # max step time / floor_all's (or floor_top's for a top-half case)
    mem_goal: float | None = None  # max live peak memory / full's
    note: str = ""
    grad_from: int | None = None  # floor cases: backward runs from this block's input (no adapter at all)
    recompute: str = "none"  # train.recompute
    recompute_goal: float | None = None  # max step time / the same method's without recomputation
    image_backbone: bool = False  # the image ViT of the same size on the frames (zeroi2v), not the video ViT
    pace: bool = False  # train with PACE (lambda 1, sigma 1.2: the official VTAB-1k command's values)
    pace_goal: float | None = None  # max (step time - the method's one-pass step time) / the one-pass step time
    #: train: one training step; frozen_pass: the backbone's forward as a probe's training step runs it
    #: (grad enabled, frozen weights); inference: that forward under no_grad (the probes' floor)
    step: str = "train"
    probes: int = 1  # a probe grid: this many attentive probes on one backbone pass (engine.probe_grid)


ADAPTERS = ["adaptformer", "arc", "arc_att", "vpt_deep", "vpt_shallow", "lora", "dora", "adapter_plus", "ssf", "bitfit"]
RECOMPUTED = ["adaptformer", "arc", "vpt_deep", "lora", "adapter_plus"]
PACED = ["lora", "adaptformer"]
PACE_LAMBDA, PACE_SIGMA = 1.0, 1.2


def cases(depth: int) -> list[Case]:
    top = list(range(depth // 2, depth))
    return [
        Case("full", "full"),
        *[Case(name, name, floor_goal=1.05) for name in ADAPTERS],
        *[Case(f"{name}+rc", name, recompute="frozen", mem_goal=0.40, recompute_goal=1.15) for name in RECOMPUTED],
        Case("adaptformer+rc_keep_qkv", "adaptformer", recompute="frozen", mem_goal=0.40, recompute_goal=1.15,
             note="the alternative policy: q/k/v kept, only the MLP side recomputed"),
        Case("full+rc_all", "full", recompute="all", note="classic gradient checkpointing"),
        Case("adaptformer_top", "adaptformer", {"layers": top}, floor_goal=1.05),
        Case("arc_top", "arc", {"layers": top}, floor_goal=1.05),
        *[Case(f"{name}+pace", name, pace=True, pace_goal=1.10) for name in PACED],
        Case("linear", "linear"),
        Case("zeroi2v", "zeroi2v", image_backbone=True,
             note="the image ViT of the same size on every frame (frame-wise attention with the temporal shift)"),
        Case("attentive_probe", "attentive_probe", note="the whole step: frozen pass, then the probe's 3 blocks "
             "over every token, forward and backward"),
        Case("attentive_probe_frozen_pass", "attentive_probe", step="frozen_pass", floor_goal=1.05,
             note="the backbone's part of the probe's step: frozen weights build no graph"),
        Case("attentive_probe_grid4", "attentive_probe", probes=4,
             note="4 probes (an lr x weight-decay grid) on one frozen pass, losses summed"),
        Case("floor_frozen", "attentive_probe", step="inference"),
        # Measured floors: no adapter, only the head trains, but the tokens entering block 0 (or the
        # first top-half block) require grad, so backward does the input-gradient half and nothing else.
        Case("floor_all", "adaptformer", {"layers": []}, grad_from=0),
        Case("floor_top", "adaptformer", {"layers": []}, grad_from=depth // 2),
    ]


def floor_of(case: Case) -> str:
    if case.method == "attentive_probe":
        return "floor_frozen"  # the backbone's forward under no_grad: the least a probe on it can cost
    return "floor_top" if case.label.endswith("_top") else "floor_all"


def build(args: argparse.Namespace, case: Case, device: str):
    """Backbone + method through adaptcli's own code, and an SGD optimizer over the trainable set."""
    import torch

    from adaptcli.methods.apply import apply_method
    from adaptcli.methods.registry import method_spec
    from adaptcli.models.config import ModelConfig
    from adaptcli.models.build import create_backbone
    from adaptcli.models.recompute import apply_recompute

    torch.manual_seed(0)
    name = args.model
    if case.image_backbone:
        from adaptcli.runs.build import counterpart

        name = counterpart(args.model, "image")
    config = ModelConfig(name=name, img_size=args.img_size, num_frames=args.frames)
    model = create_backbone(config, args.classes)
    options = method_spec(case.method).options(**case.options)
    apply_method(model, case.method, options)
    apply_recompute(model, case.recompute)
    if case.pace and device != "meta":  # the noise is an element-wise product: no FLOPs worth counting
        from adaptcli.methods.pace import install_pace_noise

        install_pace_noise(model, case.method, PACE_SIGMA)
    if case.label.endswith("+rc_keep_qkv"):
        keep_attention_inputs(model)
    if case.grad_from is not None:
        from adaptcli.models.blocks import transformer_blocks

        block = transformer_blocks(model)[case.grad_from][1]
        block.register_forward_pre_hook(lambda module, args: (args[0].detach().requires_grad_(), *args[1:]))
    if case.probes > 1:
        from adaptcli.engine.probe_grid import ProbeGrid

        model = ProbeGrid.around(model, model, case.probes)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    return model, optimizer


class KeepAttentionInputs:
    """The alternative to adaptcli's ``frozen`` policy, measured for comparison (not in the library):
    every op output up to attention is kept (so q/k/v are not recomputed), then the narrowing matmuls;
    the output projection, fc1 and the element-wise ops are recomputed. Cheaper to recompute, more to keep."""

    def __init__(self) -> None:
        # One flag per pass: the forward and the recompute share this policy object, and the
        # recompute must start before attention again (torch 2.6 replays the forward's decisions).
        self.after_attention = {False: False, True: False}

    def __call__(self, ctx, func, *args, **kwargs):
        from torch.utils.checkpoint import CheckpointPolicy

        from adaptcli.models.recompute import ATTENTION_OPS, frozen_block_policy, op_name

        name = op_name(func)
        if name in ATTENTION_OPS:
            self.after_attention[ctx.is_recompute] = True
            return CheckpointPolicy.MUST_SAVE
        if not self.after_attention[ctx.is_recompute] and name in ("mm", "addmm"):
            return CheckpointPolicy.MUST_SAVE
        return frozen_block_policy(ctx, func, *args, **kwargs)


def keep_attention_inputs(model) -> None:
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    from adaptcli.models.blocks import transformer_blocks

    for _, block in transformer_blocks(model):
        block.recompute_context = lambda: create_selective_checkpoint_contexts(KeepAttentionInputs())


def batch(args: argparse.Namespace, device: str):
    import torch

    if args.model.startswith(("video_vit", "swin3d")):
        shape = (args.batch, 3, args.frames, args.img_size, args.img_size)
    else:
        shape = (args.batch, 3, args.img_size, args.img_size)
    if device == "meta":
        return torch.empty(shape, device="meta"), torch.zeros(args.batch, dtype=torch.long, device="meta")
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(shape, generator=generator).to(device)
    labels = torch.randint(0, args.classes, (args.batch,), generator=generator).to(device)
    return inputs, labels


def autocast(args: argparse.Namespace | None, device: str):
    """bf16 autocast when ``--precision bf16`` (the default on CUDA), else nothing."""
    import contextlib

    import torch

    if args is not None and args.precision == "bf16" and device != "meta":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_loss(model, inputs, labels, pace: bool = False):
    """Cross-entropy of one pass; with ``pace``, adaptcli's two noisy passes and consistency loss."""
    import torch

    if not pace:
        logits = model(inputs)
        if logits.ndim == 3:  # a probe grid: N x B x C, each probe's loss, summed (as adaptcli's train_step)
            return sum(torch.nn.functional.cross_entropy(probe.float(), labels) for probe in logits)
        return torch.nn.functional.cross_entropy(logits.float(), labels)
    from adaptcli.engine.pace_step import consistency_loss, noisy_passes

    first, second = noisy_passes(model, inputs, two=True)
    return torch.nn.functional.cross_entropy(first.float(), labels) + PACE_LAMBDA * consistency_loss(first, second)


def train_step(model, optimizer, inputs, labels, args: argparse.Namespace | None = None, pace: bool = False) -> None:
    with autocast(args, inputs.device.type):
        loss = step_loss(model, inputs, labels, pace)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def backbone_pass(model, inputs, args: argparse.Namespace | None = None, grad: bool = True) -> None:
    """The frozen backbone's forward up to the tokens a probe reads (``grad=False``: under no_grad)."""
    import torch

    with torch.set_grad_enabled(grad), autocast(args, inputs.device.type):
        getattr(model, "main", model).forward_features(inputs)


def step_of(case: Case, model, optimizer, inputs, labels, args: argparse.Namespace | None = None) -> None:
    if case.step == "train":
        train_step(model, optimizer, inputs, labels, args, case.pace)
    else:
        backbone_pass(model, inputs, args, grad=case.step == "frozen_pass")


def depth_of(args: argparse.Namespace) -> int:
    from adaptcli.models.config import ModelConfig
    from adaptcli.models.blocks import transformer_blocks
    from adaptcli.models.build import create_backbone

    import timm  # noqa: F401  (before the meta device: torch 2.6's torch._dynamo import runs ops)
    import torch

    with torch.device("meta"):
        model = create_backbone(ModelConfig(name=args.model, img_size=args.img_size, num_frames=args.frames), 2)
    return len(transformer_blocks(model))


# --------------------------------------------------------------------------- work (FLOPs, noise-free)


def flops_per_case(args: argparse.Namespace, selected: list[Case]) -> dict[str, int]:
    """FLOPs of forward + backward per case, on the meta device, so it costs no compute."""
    import torch

    out = {}
    for case in selected:
        with torch.device("meta"):
            model, _ = build(args, case, "meta")
            inputs, labels = batch(args, "meta")
        if case.step != "train":
            out[case.label] = count_flops(lambda: backbone_pass(model, inputs))
            continue
        out[case.label] = count_flops(lambda: step_loss(model, inputs, labels, case.pace).backward())
    return out


# --------------------------------------------------------------------------- memory (one subprocess each)


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_live_bytes(prof) -> int:
    """Peak of (bytes allocated - bytes freed) by torch's CPU allocator during the profiled step:
    the CPU counterpart of ``torch.cuda.max_memory_allocated`` (tensors only, no allocator slack)."""
    # Each op's own (self) allocations net of its own frees, in start order; "[memory]" events are
    # frees outside any op. Temporaries allocated and freed inside one op are not seen (op granularity).
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def memory_probe(args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Runs in its own process: one training step, saved-tensor bytes and the RSS / CUDA peak."""
    import torch

    device = args.device
    case = next(c for c in cases(depth_of(args)) if c.label == label)
    model, optimizer = build(args, case, device)
    inputs, labels = batch(args, device)
    frozen = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in frozen and storage.device.type != "meta":
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    result: dict[str, Any] = {"label": label, "device": device}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    rss_before = current_rss()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(args, device):
            loss = step_loss(model, inputs, labels, case.pace)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cpu":
        result["live_peak_mb"] = peak_live_bytes(prof) / 2**20
    if device == "cuda":
        torch.cuda.synchronize()
        result["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - before) / 2**20
    result["saved_mb"] = sum(saved.values()) / 2**20
    result["rss_before_mb"] = rss_before / 2**20
    result["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**20
    result["rss_delta_mb"] = result["rss_peak_mb"] - result["rss_before_mb"]
    result["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return result


def run_memory_probes(args: argparse.Namespace, labels: list[str]) -> dict[str, dict[str, Any]]:
    """One subprocess per case, ``--memory-jobs`` at a time (memory is not timed, so they may overlap)."""
    from concurrent.futures import ThreadPoolExecutor

    def probe(label: str) -> dict[str, Any]:
        cmd = [sys.executable, __file__, *forwarded(args), "--_probe", label]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        if proc.returncode != 0:
            raise SystemExit(f"memory probe {label} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=max(1, args.memory_jobs)) as pool:
        results = dict(zip(labels, pool.map(probe, labels)))
    from adaptcli.models.recompute import HOOKS_KEYWORD

    if not HOOKS_KEYWORD:
        print("  note: this torch's checkpoint keeps selective-recompute tensors out of saved_tensors_hooks: "
              "saved MB of +rc cases is a lower bound (live / CUDA peaks are exact)", flush=True)
    for label, m in results.items():
        print(f"  memory {label:16s} saved {m['saved_mb']:8.1f} MB   dRSS {m['rss_delta_mb']:8.1f} MB   "
              f"peak RSS {m['rss_peak_mb']:8.1f} MB", flush=True)
    return results


def forwarded(args: argparse.Namespace) -> list[str]:
    return ["--model", args.model, "--frames", str(args.frames), "--img-size", str(args.img_size),
            "--batch", str(args.batch), "--classes", str(args.classes), "--threads", str(args.threads),
            "--device", args.device, "--precision", args.precision]


def child_env(threads: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


# --------------------------------------------------------------------------- time (interleaved)


def run_timing(args: argparse.Namespace, selected: list[Case]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process-CPU seconds of one training step per case, interleaved rounds."""
    import torch

    device = args.device
    inputs, labels = batch(args, device)
    built = {case.label: build(args, case, device) for case in selected}
    cases_by = {case.label: case for case in selected}
    steps = {label: (lambda c=cases_by[label], m=model, o=optimizer: step_of(c, m, o, inputs, labels, args))
             for label, (model, optimizer) in built.items()}

    def show(index: int, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
        print(f"  round {index + 1}/{args.repeats} (wall ms / cpu ms): "
              + "  ".join(f"{k} {wall[k][-1] * 1000:.0f}/{cpu[k][-1] * 1000:.0f}" for k in wall), flush=True)

    return time_interleaved(steps, args.repeats, args.warmup, sync=cuda_sync(device), alternate=True,
                            on_round=show)


# --------------------------------------------------------------------------- linear probe, real command


def prepare_probe_shards(root: Path, clips: int, size: int) -> Path:
    from adaptcli.data.synthetic import moving_square, write_ssv2_layout

    templates = {"left": "Pushing [something] from right to left", "right": "Pushing [something] from left to right"}
    records, train_ids, val_ids = [], [], []
    for i in range(clips + 2):
        direction = "left" if i % 2 else "right"
        clip_id = str(1000 + i)
        records.append((clip_id, templates[direction], ["box"], moving_square(direction, 16, size, size, seed=i)))
        (train_ids if i < clips else val_ids).append(clip_id)
    write_ssv2_layout(root / "src", records, {"train": train_ids, "validation": val_ids})
    shards = root / "shards"
    cmd = [sys.executable, "-m", "adaptcli", "prepare", "ssv2", str(root / "src"), "--shards", str(shards),
           "--samples-per-shard", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return shards


def probe_command(args: argparse.Namespace, shards: Path, out: Path, cache: bool) -> list[str]:
    sets = [
        f"model.img_size={args.probe_img_size}", f"model.num_frames={args.frames}",
        f"train.epochs={args.probe_epochs}", f"train.batch_size={args.batch}", "train.lr=0.001",
        f"train.feature_cache={'true' if cache else 'false'}", "data.val_split=null", "data.workers=0",
        "data.augment=resize", "data.flip=false", f"eval.batch_size={args.batch}",
    ]
    cmd = [sys.executable, "-m", "adaptcli", "finetune", "--method", "linear", "--recipe", "quick",
           "--model", args.model, "--data", str(shards), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_linear_probe(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="adaptcli-bench-") as tmp:
        root = Path(tmp)
        shards = prepare_probe_shards(root, args.probe_clips, args.probe_img_size + 16)
        result: dict[str, Any] = {"command": " ".join(probe_command(args, Path("SHARDS"), Path("OUT"), True))}
        for cache in (False, True):
            out = root / f"run-cache-{cache}"
            wall = time.perf_counter()
            proc = subprocess.run(probe_command(args, shards, out, cache), capture_output=True, text=True,
                                  env=child_env(args.threads))
            wall = time.perf_counter() - wall
            if proc.returncode != 0:
                raise SystemExit(f"finetune (cache={cache}) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            summary = json.loads((out / "summary.json").read_text())
            key = "cached" if cache else "uncached"
            result[key] = {"train_seconds": summary["train_seconds"], "wall_seconds": round(wall, 2),
                           "feature_cache": summary["feature_cache"], "steps": summary["steps"]}
            print(f"  linear probe {key:9s} train_seconds {summary['train_seconds']:8.2f}  "
                  f"(process wall {wall:.1f} s, feature_cache={summary['feature_cache']}, "
                  f"steps {summary['steps']})", flush=True)
        return result


# --------------------------------------------------------------------------- report


def verdict(ratio: float | None, goal: float | None) -> str:
    if goal is None or ratio is None:
        return "-"
    return f"<= {goal:.2f} {'PASS' if ratio <= goal else 'MISS'}"


def report(args, selected, flops, timing, memory, probe) -> str:
    """Markdown tables. Time is judged on the median step time (process CPU time on a CPU, wall time on
    a GPU), memory on the peak of live tensor bytes (CUDA: max_memory_allocated); the other columns
    are there to cross-check."""
    wall, cpu = timing if timing else ({}, {})
    clock = cpu if args.device == "cpu" else wall
    clock_name = "CPU ms" if args.device == "cpu" else "wall ms"
    full_m = memory.get("full", {})
    peak_key = "cuda_peak_mb" if "cuda_peak_mb" in full_m else "live_peak_mb"
    peak_name = "CUDA peak MB" if peak_key == "cuda_peak_mb" else "live peak MB"
    med = {label: statistics.median(values) for label, values in clock.items()}
    lines = [
        f"| method | GFLOP x full | {clock_name} | x full | clips/s | x floor | goal (x floor) | x without rc "
        f"| goal (x without rc) | saved MB x full | {peak_name} | x full | memory goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for case in selected:
        row = [case.label, f"{flops[case.label] / flops['full']:.2f}"]
        t = med.get(case.label)
        if t is not None:
            floor = med.get(floor_of(case))
            plain = med.get(case.label.split("+")[0]) if case.recompute != "none" else None
            to_floor = t / floor if floor and case.grad_from is None and case.method != "full" \
                and case.step != "inference" and not case.image_backbone else None
            to_plain = t / plain if plain else None
            row += [f"{t * 1000:.0f}", f"{t / med['full']:.2f}", f"{args.batch / t:.2f}",
                    f"{to_floor:.3f}" if to_floor else "", verdict(to_floor, case.floor_goal),
                    f"{to_plain:.3f}" if to_plain else "", verdict(to_plain, case.recompute_goal)]
        else:
            row += [""] * 7
        m = memory.get(case.label)
        if m:
            row += [f"{m['saved_mb'] / full_m['saved_mb']:.2f}", f"{m[peak_key]:.0f}",
                    f"{m[peak_key] / full_m[peak_key]:.2f}", verdict(m[peak_key] / full_m[peak_key], case.mem_goal)]
        else:
            row += [""] * 4
        lines.append("| " + " | ".join(row) + " |")
    paced = [case for case in selected if case.pace and case.label in med and case.method in med]
    if paced:
        lines += [
            "",
            f"| PACE (lambda {PACE_LAMBDA:g}, sigma {PACE_SIGMA:g}) | {clock_name} | floor: the method's one-pass step "
            "| second pass x floor | goal |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for case in paced:
            second = (med[case.label] - med[case.method]) / med[case.method]
            lines.append(f"| {case.label} | {med[case.label] * 1000:.0f} | {med[case.method] * 1000:.0f} | "
                         f"{second:.3f} | {verdict(second, case.pace_goal)} |")
    grids = [case for case in selected if case.probes > 1 and case.label in med and "attentive_probe" in med]
    if grids:
        lines += [
            "",
            f"| probe grid | {clock_name} | one probe's step ({clock_name}) | x one probe | {'separate runs: x'} |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for case in grids:
            lines.append(f"| {case.label} ({case.probes} probes, one backbone pass) | {med[case.label] * 1000:.0f} | "
                         f"{med['attentive_probe'] * 1000:.0f} | {med[case.label] / med['attentive_probe']:.2f} | "
                         f"{case.probes:.2f} |")
    if probe:
        u, c = probe["uncached"]["train_seconds"], probe["cached"]["train_seconds"]
        ratio = u / c
        lines += [
            "",
            f"| linear probe, {args.probe_epochs} epochs ({args.probe_clips} clips, {args.probe_img_size} px) "
            "| train_seconds | speed-up | goal |",
            "| --- | ---: | ---: | --- |",
            f"| without feature cache | {u:.2f} | 1.00 | |",
            f"| with feature cache | {c:.2f} | {ratio:.1f}x | >= 10x {'PASS' if ratio >= 10 else 'MISS'} |",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- GPU: batch size and loader


def largest_batch(args: argparse.Namespace, limit: int = 512) -> int:
    """The largest power of two whose ``full`` training step fits in GPU memory."""
    import torch

    full = next(c for c in cases(depth_of(args)) if c.label == "full")
    model, optimizer = build(args, full, args.device)
    best, size = 0, 1
    while size <= limit:
        args.batch = size
        try:
            inputs, labels = batch(args, args.device)
            train_step(model, optimizer, inputs, labels, args)
            torch.cuda.synchronize()
            best = size
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        size *= 2
    del model, optimizer
    torch.cuda.empty_cache()
    if not best:
        raise SystemExit("full does not fit with batch 1; pass a smaller --img-size / --frames")
    return best


def loader_rate(args: argparse.Namespace, shards: Path, workers: int, batches: int = 30) -> float:
    """Clips per second of adaptcli's training stream over prepared shards (decode + augment + batch)."""
    from adaptcli.data.config import DataConfig
    from adaptcli.data.stream.shards import ShardFolder
    from adaptcli.data.stream.spec import StreamSpec
    from adaptcli.data.stream.train import train_loader

    spec = StreamSpec.from_config(DataConfig(), args.img_size, args.frames, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    loader, _ = train_loader(ShardFolder.read(shards), "train", spec, args.batch, rank=0, world_size=1, workers=workers,
                             seed=0, epoch=0)
    stream = iter(loader)
    next(stream)  # workers started, first batch out
    started, clips = time.perf_counter(), 0
    for _ in range(batches):
        clips += len(next(stream))
    return clips / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: ViT-B video, 16 frames, bf16, the largest batch that fits full (unless given)")
    parser.add_argument("--model", default=None, help="default: video_vit_small_patch16 (CPU), video_vit_base_patch16 (CUDA)")
    parser.add_argument("--frames", type=int, default=None, help="default: 8 (CPU), 16 (CUDA)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=None, help="default: 4 on CPU; on CUDA the largest power of "
                        "two that fits full's training step")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: fp32 (CPU), bf16 (CUDA)")
    parser.add_argument("--classes", type=int, default=174)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3, --quick 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--memory-jobs", type=int, default=None, help="memory-probe subprocesses at a time "
                        "(default 2 on CPU; on CUDA always 1: probes at the largest batch that fits cannot share a GPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared machine CPU time then measures work)")
    parser.add_argument("--methods", default=None, help="comma-separated case labels (default: all; full and the "
                        "floors are always measured)")
    parser.add_argument("--probe-img-size", type=int, default=112, help="image size of the linear-probe runs")
    parser.add_argument("--probe-clips", type=int, default=8, help="training clips of the linear-probe runs")
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument("--loader-shards", type=Path, default=None,
                        help="prepared video shards (adaptcli prepare ...): also measure the training stream's clips/s")
    parser.add_argument("--loader-workers", default="8,16", help="worker counts for --loader-shards")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: memory,time,probe")
    parser.add_argument("--json", type=Path, default=None, help="also write all raw numbers here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 112 px (unless given), 2 rounds, "
                        "4 probe epochs")
    parser.add_argument("--_probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    args.model = args.model or ("video_vit_base_patch16" if cuda else "video_vit_small_patch16")
    args.frames = args.frames or (16 if cuda else 8)
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    if cuda and (args.memory_jobs or 1) > 1:
        parser.error("--device cuda: memory probes run one at a time on one GPU (--memory-jobs 1)")
    args.memory_jobs = args.memory_jobs or (1 if cuda else 2)
    if args.quick:
        args.img_size = 112 if args.img_size == 224 else args.img_size
        args.probe_epochs = min(args.probe_epochs, 4)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    import torch

    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args._probe:
        print(json.dumps(memory_probe(args, args._probe)))
        return
    if args.batch is None:
        args.batch = largest_batch(args) if cuda else 4

    skip = set(filter(None, args.skip.split(",")))
    selected = cases(depth_of(args))
    if args.methods:
        wanted = set(args.methods.split(",")) | {"full", "floor_all", "floor_top", "floor_frozen"}
        wanted |= {label.split("+")[0] for label in wanted if label.endswith("+pace")}  # their floors
        selected = [c for c in selected if c.label in wanted]
    name = torch.cuda.get_device_name() if cuda else f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
    print(f"{args.model}, {args.frames} frames, {args.img_size} px, batch {args.batch}, {args.precision}, "
          f"device {args.device} ({name}), torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    flops = flops_per_case(args, selected)
    memory = {} if "memory" in skip else run_memory_probes(args, [c.label for c in selected
                                                                  if c.grad_from is None and c.step == "train"])
    timing = () if "time" in skip else run_timing(args, selected)
    probe = {} if "probe" in skip or cuda else run_linear_probe(args)
    loader = {}
    if args.loader_shards:
        for workers in [int(w) for w in args.loader_workers.split(",")]:
            loader[workers] = loader_rate(args, args.loader_shards, workers)
            print(f"  loader, {workers} workers: {loader[workers]:.1f} clips/s", flush=True)
    table = report(args, selected, flops, timing, memory, probe)
    print()
    print(table)
    if loader and timing:
        clock = timing[1] if args.device == "cpu" else timing[0]
        rates = {c.label: args.batch / statistics.median(clock[c.label]) for c in selected
                 if c.grad_from is None and c.label in clock and c.method not in ("full", "linear", "attentive_probe")}
        fastest = max(rates, key=rates.get)
        print(f"\n| loader workers | clips/s | x fastest method's step ({fastest}, {rates[fastest]:.1f} clips/s) | goal |")
        print("| ---: | ---: | ---: | --- |")
        for workers, rate in loader.items():
            print(f"| {workers} | {rate:.1f} | {rate / rates[fastest]:.2f} | > 1 {'PASS' if rate > rates[fastest] else 'MISS'} |")
    print("\n(x floor: step time over floor_all's (floor_top's for _top cases): no adapter, the head trains and "
          "the tokens entering block 0 / the first top-half block require grad: forward plus the input-gradient "
          "half of backward, the least any adapter in those blocks can cost; floor_frozen, for the attentive "
          "probe: the backbone's forward under no_grad. +rc: train.recompute=frozen; x without "
          "rc compares with the same method without it.)")
    print(f"(top = adapters in blocks {depth_of(args) // 2}..{depth_of(args) - 1} only. "
          f"Total {time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "flops": flops,
                                         "timing": timing, "memory": memory, "probe": probe, "loader": loader,
                                         "table": table}, indent=1))


if __name__ == "__main__":
    main()
