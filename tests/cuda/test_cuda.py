"""The GPU path on a real CUDA device: every method in bf16 (with each recompute mode, and compiled),
exports of a GPU-trained run, multi-view eval, pinned loading and SIGTERM checkpointing.

Tiny models (test_vit at 32 px, a 4-frame video ViT), a few steps each: the whole file runs in a couple
of minutes on one GPU. The CLI runs in subprocesses that see the GPU; what they wrote is compared here,
in this (CPU-pinned, fp32) process. Skipped, with the reason, where torch sees no CUDA device.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import adaptcli
from adaptcli.methods.registry import method_names
from tests.cuda.conftest import cli, cli_batch, finetune_args, gpu_env, summary

pytestmark = pytest.mark.cuda

MODES = ["none", "frozen", "all"]
#: Compiled runs cost a compilation each: one per kind of adapter graph, each with another recompute mode.
COMPILED = [("adaptformer", "none"), ("arc", "frozen"), ("lora", "all"), ("vpt_deep", "frozen"), ("full", "none")]
VIDEO = ["--model", "video_vit_test", "--set", "model.num_frames=4"]


def _assert_trained_in_bf16_on_cuda(run: Path, result: dict) -> None:
    assert result["exit_code"] == 0, result["output"]
    done = summary(run)
    assert done["precision"] == "bf16", done["precision"]
    assert done["peak_memory_kind"] == "cuda_max_memory_allocated" and done["peak_memory_mb"] > 0
    assert done["steps"] == 2 and math.isfinite(done["final_loss"])


#: Methods that run an image model on video frames: trained on the video shards with the tiny image ViT.
ON_FRAMES = {"zeroi2v": ["--model", "test_vit", "--set", "model.num_frames=4"]}


@pytest.fixture(scope="module")
def trained(image_shards, video_shards, tmp_path_factory) -> tuple[Path, dict]:
    """Every method x recompute mode, two bf16 steps each (``precision: auto``), in one GPU process."""
    root = tmp_path_factory.mktemp("cuda-runs")
    cases = [(method, mode) for method in method_names() for mode in MODES]
    jobs = [finetune_args(video_shards if method in ON_FRAMES else image_shards, root / f"{method}-{mode}", method,
                          "--set", f"train.recompute={mode}", *ON_FRAMES.get(method, []))
            for method, mode in cases]
    return root, dict(zip(cases, cli_batch(jobs, root / "batch")))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_in_bf16_on_cuda(trained, method, mode):
    root, results = trained
    _assert_trained_in_bf16_on_cuda(root / f"{method}-{mode}", results[(method, mode)])


def test_compiled_methods_train_in_bf16_on_cuda(image_shards, tmp_path):
    jobs = [finetune_args(image_shards, tmp_path / f"{method}-{mode}", method, "--set", "train.compile=true",
                          "--set", f"train.recompute={mode}") for method, mode in COMPILED]
    for (method, mode), result in zip(COMPILED, cli_batch(jobs, tmp_path / "batch")):
        _assert_trained_in_bf16_on_cuda(tmp_path / f"{method}-{mode}", result)
        assert summary(tmp_path / f"{method}-{mode}")["compiled"] is True


def test_arc_layer_norm_backward_over_many_rows_in_bf16():
    """ARC's adapter where CUDA's LayerNorm backward splits its reduction (> 65,536 rows): gradients
    equal the formula's, computed in float64 on the CPU."""
    from adaptcli.methods.arc.method import ArcAdapter, ArcProjection

    torch.manual_seed(0)
    rows, dim = 70_000, 256
    norm = torch.nn.LayerNorm(dim).requires_grad_(False)
    adapter = ArcAdapter(norm, ArcProjection(dim, 8), 0.0, "xavier").cuda()
    with torch.no_grad():
        adapter.bias.normal_(0, 0.1)
        adapter.scale.normal_(0, 0.5)
    x = torch.randn(rows, dim, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        adapter(x).float().square().mean().backward()
    got = {n: p.grad.double().cpu() for n, p in adapter.named_parameters() if p.requires_grad}

    u = adapter.projection.weight.detach().double().cpu().requires_grad_()
    s, b = (adapter.scale.detach().double().cpu().requires_grad_(), adapter.bias.detach().double().cpu().requires_grad_())
    h = torch.nn.functional.layer_norm(x.double().cpu(), (dim,), norm.weight.double().cpu(), norm.bias.double().cpu())
    (h + (h @ (u * s)) @ u.T + b).square().mean().backward()
    assert set(got) == {"scale", "bias"} and u.grad is not None
    for name, expected in (("scale", s.grad), ("bias", b.grad)):
        assert got[name].shape == expected.shape
        assert (got[name] - expected).abs().max() <= 0.02 * expected.abs().max() + 1e-6, name


def _logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(inputs)


def test_a_gpu_trained_run_exports_and_every_export_equals_the_run(trained, tmp_path):
    from tests.export.test_timm_folder import load_in_fresh_process

    root, _ = trained
    run = root / "arc-frozen"
    merged, adapter, full, folder = (tmp_path / "merged.safetensors", tmp_path / "task.safetensors",
                                     tmp_path / "full.safetensors", tmp_path / "timm")
    for mode, out, extra in (("merge", merged, []), ("adapter-only", adapter, []), ("full", full, []),
                             ("merge", folder, ["--format", "timm"])):
        done = cli("export", "--run", run, f"--{mode}", "--out", out, *extra)
        assert done.returncode == 0, done.stderr[-3000:]
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    reference = _logits(adaptcli.load(full), inputs)  # the run's own model, every tensor as trained
    assert (_logits(adaptcli.load(merged), inputs) - reference).abs().max() <= 1e-4
    assert (_logits(adaptcli.load(adapter, backbone=run / "backbone.safetensors"), inputs) - reference).abs().max() <= 1e-6
    loaded, _ = load_in_fresh_process(folder, inputs, tmp_path, prelude="")
    assert (loaded - reference).abs().max() <= 1e-4


def _eval_json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])


def test_multi_view_eval_on_cuda_matches_the_cpu(video_shards, tmp_path):
    run = tmp_path / "video"
    done = cli(*finetune_args(video_shards, run, "adaptformer", *VIDEO))
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary(run)["precision"] == "bf16"
    on_gpu = _eval_json(cli("eval", "--run", run, "--split", "validation", "--views", "2x3", "--json"))
    on_cpu = _eval_json(cli("eval", "--run", run, "--split", "validation", "--views", "2x3", "--json", cpu=True))
    assert on_gpu["samples"] == on_cpu["samples"] == 8
    assert on_gpu["views"] == on_cpu["views"] == "2x3"
    # bf16 on the GPU against fp32 on the CPU: at most one of the 8 clips may flip.
    assert abs(on_gpu["top1"] - on_cpu["top1"]) <= 100 / 8 + 1e-6


def test_pinned_loading_gives_page_locked_batches_equal_to_plain_ones(image_shards):
    from adaptcli.data.stream.shards import ShardFolder
    from adaptcli.data.stream.spec import StreamSpec
    from adaptcli.data.stream.train import train_loader

    spec = StreamSpec(img_size=32, num_frames=1, mean=(0.5,) * 3, std=(0.5,) * 3, augment="resize", flip=False)
    plain, _ = train_loader(ShardFolder.read(image_shards), "train", spec, 4)
    pinned, _ = train_loader(ShardFolder.read(image_shards), "train", spec, 4, pin_memory=True)
    got = [b.inputs for b in pinned.loader(0)]
    expected = [b.inputs for b in plain.loader(0)]
    assert got and all(t.is_pinned() for t in got) and not any(t.is_pinned() for t in expected)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    moved = got[0].to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(moved.cpu(), expected[0])


def test_sigterm_on_cuda_saves_exits_143_and_resumes(image_shards, tmp_path):
    out = tmp_path / "run"
    args = finetune_args(image_shards, out, "arc", "--set", "train.epochs=2", "--set", "train.batch_size=4",
                         "--set", "train.save_every_steps=2", "--set", "train.keep_checkpoints=3", short=False)
    process = subprocess.Popen([sys.executable, "-m", "adaptcli", *map(str, args)], env=gpu_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "checkpoints" / "epoch-0000-step-00000002"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert first.exists(), f"no checkpoint (exit {process.poll()})"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-2000:]
    info = json.loads((out / "run.json").read_text())
    assert info["state"] == "interrupted" and info["reason"] == "SIGTERM" and info["step"] >= 2
    assert (out / "checkpoints" / info["checkpoint"]).is_dir()
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert json.loads((out / "run.json").read_text())["state"] == "finished"
    assert summary(out)["precision"] == "bf16" and math.isfinite(summary(out)["final_loss"])


@pytest.mark.parametrize("kind", ["image", "video"])
def test_batches_decoded_on_cuda_equal_the_cpu_decode_within_decoder_rounding(image_shards, video_shards, kind):
    """``data.decode: cuda``: nvJPEG on the GPU against libjpeg-turbo on the CPU, the same resample code on
    both (bit-identical to Pillow on the CPU). Only the decoders' colour rounding may differ."""
    from adaptcli.data.stream.batch_decode import decode_batch
    from adaptcli.data.stream.shards import ShardFolder
    from adaptcli.data.stream.spec import StreamSpec
    from adaptcli.data.stream.train import train_loader

    spec = StreamSpec(img_size=24, num_frames=4 if kind == "video" else 1, mean=(0.5,) * 3, std=(0.25,) * 3)
    shards = ShardFolder.read(video_shards if kind == "video" else image_shards)
    stream, _ = train_loader(shards, "train", spec, 4, encoded=True, pin_memory=True)
    batch = next(iter(stream.start(0)))
    assert batch.encoded is not None and batch.encoded.data.is_pinned()  # the DataLoader called Batch.pin_memory
    on_gpu = decode_batch(batch.encoded, "cuda").cpu()
    on_cpu = decode_batch(batch.encoded, "cpu")
    levels = ((on_gpu - on_cpu).abs() * 255 * 0.25).round()  # back to 8-bit levels
    assert on_gpu.shape == on_cpu.shape and levels.max().item() <= 4 and levels.mean().item() < 0.5


def test_finetune_with_data_decode_cuda_trains(video_shards, tmp_path):
    run = tmp_path / "decode-cuda"
    done = cli(*finetune_args(video_shards, run, "adaptformer", *VIDEO, "--set", "data.decode=cuda",
                              "--set", "data.workers=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary(run)["steps"] == 2 and math.isfinite(summary(run)["final_loss"])
