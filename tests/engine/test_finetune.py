"""finetune / eval end to end through the CLI on tiny models and small prepared shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.engine.conftest import TINY

runner = CliRunner()


def finetune(data: Path, out: Path, method: str, *extra: str) -> dict:
    result = runner.invoke(app, ["finetune", "--method", method, "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), *TINY, *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_learns_and_eval_counts_by_hand(image_shards, tmp_path):
    run = tmp_path / "run"
    summary = finetune(image_shards, run, "adaptformer", "--set", "train.epochs=4", "--set", "train.lr=0.003")
    losses = [m["loss"] for m in metrics(run) if m["event"] == "train"]
    assert losses[-1] < losses[0]
    assert summary["best_val_top1"] > 60.0  # 3 classes: chance is 33%
    for name in ("config.yaml", "run.json", "trainable.safetensors", "best.safetensors", "backbone.safetensors"):
        assert (run / name).exists(), name

    result = runner.invoke(app, ["eval", "--run", str(run), "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.output[result.output.index("{"):])
    assert reported == json.loads((run / "eval.json").read_text())

    # Hand count on the same predictions.
    from adaptcli.data.stream.evaluation import eval_loader
    from adaptcli.data.stream.shards import ShardFolder
    from adaptcli.data.stream.spec import StreamSpec
    from adaptcli.runs.load import load_run_model
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.build import normalisation

    loaded = load_run_model(RunDir(run))
    model, config, info = loaded.model, loaded.config, loaded.info
    norm = normalisation(model)
    spec = StreamSpec.from_config(config.data, config.model.img_size, config.model.num_frames, norm.mean, norm.std)
    correct, total, per_class = 0, 0, {}
    with torch.no_grad():
        for batch in eval_loader(ShardFolder.read(image_shards), "test", spec, 5):
            predictions = model(batch.inputs).argmax(1)
            for p, y in zip(predictions.tolist(), batch.labels.tolist()):
                correct += p == y
                total += 1
                hits, seen = per_class.get(y, (0, 0))
                per_class[y] = (hits + (p == y), seen + 1)
    assert reported["samples"] == total == 18
    assert reported["top1"] == pytest.approx(100.0 * correct / total)
    assert reported["top5"] == 100.0  # 3 classes
    class_acc = [100.0 * h / s for h, s in per_class.values()]
    assert reported["mean_class_acc"] == pytest.approx(sum(class_acc) / len(class_acc))
    assert reported["per_class"][info.classes[0]] == pytest.approx(class_acc[0] if 0 in per_class else None)


def _run_cli(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "adaptcli", *args], capture_output=True, text=True, env=env)


def _kill_when(args: list[str], ready: Path, timeout: float = 300.0) -> int:
    """Start the CLI, SIGKILL it from outside as soon as ``ready`` exists; the exit code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "adaptcli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    return process.wait()


def test_resume_after_a_kill_equals_an_uninterrupted_run(image_shards, tmp_path):
    from adaptcli.io import read_safetensors as load_tensors

    common = ["finetune", "--method", "arc", "--recipe", "quick", "--data", str(image_shards), *TINY,
              "--set", "train.epochs=12", "--set", "method.dim=4"]  # 11 epochs after the kill point: a wide window
    straight = _run_cli([*common, "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr[-2000:]

    checkpoints = tmp_path / "b" / "checkpoints"
    killed = _kill_when([*common, "--out", str(tmp_path / "b")], checkpoints / "epoch-0001")
    assert killed == -9, "the run ended before the kill: it resumed nothing"
    assert [p.name for p in checkpoints.iterdir() if not p.name.startswith(".")] == ["epoch-0001"]
    resumed = _run_cli([*common, "--out", str(tmp_path / "b"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout

    a, _ = load_tensors(tmp_path / "a" / "trainable.safetensors")
    b, _ = load_tensors(tmp_path / "b" / "trainable.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    # The frozen/trainable split survives the resume (the reference code un-freezes everything).
    state = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert state["trainable_params"] == json.loads((tmp_path / "a" / "summary.json").read_text())["trainable_params"]


def test_linear_probe_uses_the_feature_cache(image_shards, tmp_path):
    summary = finetune(image_shards, tmp_path / "lin", "linear", "--set", "train.epochs=3", "--set", "train.lr=0.01")
    assert summary["feature_cache"] is True
    assert summary["trainable_params"] == 64 * 3 + 3
    assert summary["best_val_top1"] > 60.0
    off = finetune(image_shards, tmp_path / "lin2", "linear", "--set", "train.epochs=1",
                   "--set", "train.feature_cache=false")
    assert off["feature_cache"] is False


def test_video_run_with_multi_view_eval(video_shards, tmp_path):
    run = tmp_path / "video"
    summary = finetune(video_shards, run, "adaptformer", "--model", "video_vit_test", "--set", "model.num_frames=4",
                       "--set", "train.epochs=2")
    assert summary["epochs"] == 2
    result = runner.invoke(app, ["eval", "--run", str(run), "--split", "validation", "--views", "2x3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["samples"] == 8 and report["views"] == "2x3"


def test_videomae_repeated_aug_and_head_dropout_train_end_to_end(video_shards, tmp_path):
    """data.repeated_aug=2 (8 clips of 4 videos per step, mixed) and model.head_dropout, as the VideoMAE recipes."""
    summary = finetune(video_shards, tmp_path / "videomae", "full", "--model", "video_vit_test",
                       "--set", "model.num_frames=4", "--set", "train.batch_size=4", "--set", "data.repeated_aug=2",
                       "--set", "model.head_dropout=0.5", "--set", "train.mixup=0.8", "--set", "train.layer_decay=0.75")
    assert summary["steps"] == summary["epochs"] * 16 // 4  # steps count videos: 16 train clips, 4 a step
    keys = [m for m in metrics(tmp_path / "videomae") if m["event"] == "data"][0]["first_batch_keys"][0]
    assert len(keys) == 8 and keys[0::2] == keys[1::2]  # each video twice, side by side


@pytest.mark.parametrize("mode", ["frozen", "all"])
def test_recompute_trains_the_same_weights(image_shards, tmp_path, mode):
    from adaptcli.io import read_safetensors as load_tensors

    common = ["--set", "train.epochs=2", "--set", "method.dim=4", "--set", "method.dropout=0.2"]
    finetune(image_shards, tmp_path / "plain", "arc", *common)
    finetune(image_shards, tmp_path / mode, "arc", *common, "--set", f"train.recompute={mode}")
    a, _ = load_tensors(tmp_path / "plain" / "trainable.safetensors")
    b, _ = load_tensors(tmp_path / mode / "trainable.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "arc", "--set", "train.epohcs=3"], "did you mean 'train.epochs'"),
        (["--method", "arc", "--set", "train.grad_checkpointing=true"], "use train.recompute (all = the old"),
        (["--method", "arc", "--set", "train.recompute=some"], "train.recompute"),
        (["--method", "arc", "--model", "video_vit_test"], "the shards hold images but 'video_vit_test' is a video model"),
    ],
)
def test_bad_input_is_a_one_line_error(image_shards, tmp_path, args, message):
    result = runner.invoke(app, ["finetune", "--recipe", "quick", "--data", str(image_shards),
                                 "--out", str(tmp_path / "x"), *TINY, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_video_shards_with_an_image_model_are_refused(video_shards, tmp_path):
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(video_shards),
                                 "--out", str(tmp_path / "x"), *TINY])
    assert result.exit_code == 2
    assert "the shards hold videos but 'test_vit' is an image model" in result.output


def test_out_with_a_different_run_is_refused_and_resume_checks_config(image_shards, tmp_path):
    run = tmp_path / "run"
    finetune(image_shards, run, "linear", "--set", "train.epochs=1")
    again = runner.invoke(app, ["finetune", "--method", "arc", "--recipe", "quick", "--data", str(image_shards),
                                "--out", str(run), *TINY])
    assert again.exit_code == 2 and "already holds an adaptcli run" in again.output
    other = runner.invoke(app, ["finetune", "--method", "arc", "--recipe", "quick", "--data", str(image_shards),
                                "--out", str(run), "--resume", *TINY])
    assert other.exit_code == 2 and "configuration differs" in other.output


def test_checkpoint_that_does_not_fit_is_refused(image_shards, tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"patch_embed.proj.weight": torch.zeros(8, 3, 4, 4)}, str(bad))
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(image_shards),
                                 "--out", str(tmp_path / "x"), "--checkpoint", str(bad), *TINY])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_nan_loss_stops_with_the_step_named(image_shards, tmp_path):
    result = runner.invoke(app, ["finetune", "--method", "full", "--recipe", "quick", "--data", str(image_shards),
                                 "--out", str(tmp_path / "nan"), *TINY, "--set", "train.lr=1e30",
                                 "--set", "train.clip_grad=null", "--set", "train.optimizer=sgd",
                                 "--set", "train.epochs=2"])
    assert result.exit_code == 2, result.output
    assert "loss became" in result.output and "at step" in result.output


def test_two_processes_run_the_same_steps_on_different_data(image_shards, tmp_path):
    """``accelerate launch`` with 2 CPU processes (torchrun under the hood, gloo process group)."""
    run = tmp_path / "mp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "adaptcli", "finetune", "--method", "arc", "--recipe", "quick", "--data", str(image_shards),
           "--out", str(run), *TINY, "--set", "train.epochs=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    # 48 training images, batch 8, 2 ranks -> 3 steps per epoch on every rank
    assert summary["steps"] == 2 * (48 // (8 * 2))
    first = [m for m in metrics(run) if m["event"] == "data"][0]["first_batch_keys"]
    assert len(first) == 2 and set(first[0]).isdisjoint(first[1])  # 5 shards: ranks read their own
    # Validation counted every sample exactly once across the two processes.
    result = runner.invoke(app, ["eval", "--run", str(run), "--split", "validation", "--json"])
    assert json.loads(result.output[result.output.index("{"):])["samples"] == 18


def test_swin_runs_end_to_end_with_arc(image_shards, tmp_path):
    run = tmp_path / "swin"
    summary = finetune(image_shards, run, "arc", "--model", "swin_tiny_patch4_window7_224", "--set", "method.dim=8",
                       "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2")
    assert summary["steps"] == 2
    assert summary["method_params"] == 2 * 8 * (96 + 192 + 384 + 768) + 2 * sum(
        n * (8 + d) for n, d in ((2, 96), (2, 192), (6, 384), (2, 768)))


def test_video_vit_small_runs_end_to_end(video_shards, tmp_path):
    summary = finetune(video_shards, tmp_path / "vits", "vpt_deep", "--model", "video_vit_small_patch16",
                       "--set", "model.num_frames=4", "--set", "train.epochs=1")
    assert summary["method_params"] == 12 * 1 * 384  # one prompt per block, D = 384
    assert summary["steps"] == 16 // 8


def test_overwrite_replaces_only_a_run_folder(image_shards, tmp_path):
    """--overwrite on a folder without run.json is refused (and never suggested); data is never --out."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    base = ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(image_shards), *TINY]
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, [*base, "--out", str(foreign), *extra])
        assert result.exit_code == 2 and "not an adaptcli run" in result.output, result.output
        assert "--overwrite" not in result.output
    assert (foreign / "thesis.tex").read_text() == "years of work"
    for out, relation in ((image_shards, "is --data"), (image_shards / "run", "lies inside --data"),
                          (image_shards.parent, "contains --data")):
        result = runner.invoke(app, [*base, "--out", str(out), "--overwrite"])
        assert result.exit_code == 2 and relation in result.output, result.output
    assert (image_shards / "dataset.json").is_file() and not (image_shards / "run").exists()


def test_export_never_replaces_without_overwrite_nor_the_runs_own_files(image_shards, tmp_path):
    run = tmp_path / "run"
    finetune(image_shards, run, "linear", "--set", "train.epochs=1")
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"someone's file")
    refused = runner.invoke(app, ["export", "--run", str(run), "--merge", "--out", str(out)])
    assert refused.exit_code == 2 and "already exists" in refused.output
    assert out.read_bytes() == b"someone's file"
    done = runner.invoke(app, ["export", "--run", str(run), "--merge", "--out", str(out), "--overwrite"])
    assert done.exit_code == 0, done.output
    before = (run / "backbone.safetensors").read_bytes()
    for own in ("backbone.safetensors", "trainable.safetensors"):
        result = runner.invoke(app, ["export", "--run", str(run), "--merge", "--out", str(run / own), "--overwrite"])
        assert result.exit_code == 2 and "one of the run's own files" in result.output, result.output
    assert (run / "backbone.safetensors").read_bytes() == before


@pytest.mark.parametrize("method, options", [
    ("lora", ["--set", "method.r=4"]), ("dora", ["--set", "method.r=4"]), ("ssf", []), ("bitfit", []),
    ("adapter_plus", ["--set", "method.bottleneck=4"]),  # drop-path 0.1: the RNG state must come back too
])
def test_resume_from_an_earlier_checkpoint_repeats_the_run(image_shards, tmp_path, method, options):
    import shutil

    from adaptcli.io import read_safetensors as load_tensors

    common = ["--set", "train.epochs=2", "--set", "train.keep_checkpoints=3", *options]
    finetune(image_shards, tmp_path / "a", method, *common)
    # An interrupted copy: the run as it stood after epoch 1.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "epoch-0002")
    for name in ("summary.json", "trainable.safetensors", "best.safetensors"):
        (tmp_path / "b" / name).unlink(missing_ok=True)
    resumed = runner.invoke(app, ["finetune", "--method", method, "--recipe", "quick", "--data", str(image_shards),
                                  "--out", str(tmp_path / "b"), "--resume", *TINY, *common])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output
    a, _ = load_tensors(tmp_path / "a" / "trainable.safetensors")
    b, _ = load_tensors(tmp_path / "b" / "trainable.safetensors")
    assert a.keys() == b.keys() and len(a) > 2
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    # Not trivially equal: epoch 2 moved the weights away from the checkpoint the copy resumed from.
    first, _ = load_tensors(tmp_path / "a" / "checkpoints" / "epoch-0001" / "model.safetensors")
    assert any(not torch.equal(first[k], a[k]) for k in a if k in first), sorted(first)[:3]


def test_a_resumed_runs_train_time_sums_every_part_and_report_shows_it(image_shards, tmp_path):
    import shutil

    common = ["--set", "train.epochs=3", "--set", "train.keep_checkpoints=3"]
    finetune(image_shards, tmp_path / "a", "bitfit", *common)
    # An interrupted copy: two epochs trained by the first part, the third by the resumed one.
    run = shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(run / "checkpoints" / "epoch-0003")
    for name in ("summary.json", "trainable.safetensors", "best.safetensors"):
        (run / name).unlink(missing_ok=True)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(line for line in lines if json.loads(line).get("epoch") != 3))
    first_part = json.loads((run / "checkpoints" / "epoch-0002" / "state.json").read_text())["train_seconds"]
    first_epochs = sum(m["seconds"] for m in metrics(run) if m["event"] == "train")
    assert first_part >= first_epochs > 0  # what the checkpoint carries covers the epochs it trained

    started = time.monotonic()
    resumed = runner.invoke(app, ["finetune", "--method", "bitfit", "--recipe", "quick", "--data", str(image_shards),
                                  "--out", str(run), "--resume", *TINY, *common])
    second_wall = time.monotonic() - started
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "epoch-0002" in resumed.output
    second_epochs = sum(m["seconds"] for m in metrics(run) if m["event"] == "train" and m["epoch"] == 3)
    assert second_epochs > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == json.loads((tmp_path / "a" / "summary.json").read_text())["steps"]
    # Both parts counted (0.01: summary.json rounds to 2 decimals), not the time between them.
    assert first_part + second_epochs - 0.01 <= summary["train_seconds"] <= first_part + second_wall + 0.01
    assert summary["train_seconds"] >= first_epochs + second_epochs - 0.01  # every epoch's own record
    assert f"in {summary['train_seconds']:.1f} s" in resumed.output

    report = runner.invoke(app, ["report", str(run), "--format", "json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["runs"][0]["train_seconds"] == summary["train_seconds"]


@pytest.mark.parametrize("recipe", ["ssv2", "quick"])
def test_the_printed_eval_commands_run_as_printed(video_shards, tmp_path, recipe):
    """finetune's ``next:`` and an adapter export's ``cli:`` line name the split the run tests on: the ssv2 recipe's
    ``validation`` (SSv2's test split is unlabelled), or the validation split of data without a test split."""
    import shlex

    run = tmp_path / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", recipe, "--data", str(video_shards),
                                 "--out", str(run), *TINY, "--model", "video_vit_test", "--set", "model.num_frames=4",
                                 "--set", "train.epochs=1", "--set", "train.warmup_epochs=0",
                                 "--set", "train.batch_size=4", "--set", "eval.views=1x1"])
    assert result.exit_code == 0, result.output
    exported = runner.invoke(app, ["export", "--run", str(run), "--adapter-only", "--out", str(tmp_path / "a.safetensors")])
    assert exported.exit_code == 0, exported.output
    lines = [line.split("next: ", 1)[1].rstrip(")") for line in result.output.splitlines() if "next: " in line]
    lines += [line.split("cli: ", 1)[1] for line in exported.output.splitlines() if line.startswith("cli: ")]
    assert len(lines) == 2, result.output + exported.output
    for line in lines:
        args = shlex.split(line)
        assert args[:2] == ["adaptcli", "eval"] and args[-2:] == ["--split", "validation"], line
        evaluated = runner.invoke(app, args[1:])
        assert evaluated.exit_code == 0, f"{line}\n{evaluated.output}"
        assert "validation: top-1" in evaluated.output
