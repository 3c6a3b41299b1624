"""A table of hostile inputs and faults across every command.

Every case asserts exit code 2 and a single stderr line naming the problem (or, for a skippable
sample, exit 0 with the sample under ``skipped``), and that nothing outside adaptcli's own outputs
changed: the files of the shared data, source, run and every input a case makes are checksummed
before and after. Most cases run in-process; permission cases drop root's file-permission override
(``setpriv``), disk-full and read-only cases mount a small tmpfs in a private mount namespace
(``unshare -m``), and skip with the reason where those are not available.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.reliability.conftest import TINY, checksums, message_lines, train_shards, truncate_in_first_sample

runner = CliRunner()
PYTHON = sys.executable
NO_DAC = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


@dataclass
class WS:
    """The shared inputs (never to be changed by any case) and this case's own folder."""

    source: Path
    shards: Path
    run: Path
    tmp: Path

    def copy(self, what: Path, name: str) -> Path:
        target = self.tmp / name
        shutil.copytree(what, target) if what.is_dir() else shutil.copy2(what, target)
        return target


@dataclass
class Spec:
    argv: list[str]
    watch: list[Path] = field(default_factory=list)  # this case's inputs: must not change
    wrap: str | None = None  # "nodac", "full:<mountpoint>", "ro:<mountpoint>": run in a subprocess
    check: Callable[[WS], None] | None = None  # for exit-0 cases: what must hold afterwards


def ft(ws: WS, *extra: str, method: str = "linear", data: Path | None = None, out: Path | None = None) -> list[str]:
    return ["finetune", "--method", method, "--recipe", "quick", "--data", str(data or ws.shards),
            "--out", str(out or ws.tmp / "out"), *TINY, "--set", "train.epochs=1", *extra]


def sets(*pairs: str) -> list[str]:
    return [item for pair in pairs for item in ("--set", pair)]


def foreign(ws: WS) -> Path:
    folder = ws.tmp / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    return folder


def tree_without(src: Path, ws: WS, name: str) -> Path:
    return ws.copy(src, name)


def edited_manifest(ws: WS, edit: Callable[[dict], None]) -> Path:
    data = ws.copy(ws.shards, "data")
    manifest = json.loads((data / "dataset.json").read_text())
    edit(manifest)
    (data / "dataset.json").write_text(json.dumps(manifest))
    return data


def truncated(ws: WS, kind: str) -> Path:
    import timm
    import torch
    from safetensors.torch import save_file

    import adaptcli.models.architectures  # noqa: F401

    state = timm.create_model("test_vit", num_classes=0).state_dict()
    path = ws.tmp / f"ckpt.{kind}"
    if kind == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif kind == "pth":
        torch.save(state, path)
    else:
        np.savez(path, **{k.replace(".", "/"): v.numpy() for k, v in state.items()})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def source_with(ws: WS, build: Callable[[Path], None]) -> Path:
    src = ws.copy(ws.source, "src")
    build(src)
    return src


def prep(src: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "imagefolder", str(src), "--shards", str(out), "--no-progress", "--workers", "0", *extra]


def skipped_keys(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "dataset.json").read_text())
    return {entry["key"]: entry["reason"] for entry in manifest["skipped"]}


def classes(out: Path) -> list[str]:
    return list(json.loads((out / "dataset.json").read_text())["classes"].values())


def png16(path: Path, value: int) -> None:
    from PIL import Image

    Image.fromarray(np.full((32, 32), value, np.uint16)).save(path)


# --------------------------------------------------------------------------- the table
# (id, builder, expected message (a regular expression) or None for exit-0 cases)

CASES: list[tuple[str, Callable[[WS], Spec], str | None]] = [
    # ranges: one line naming key, value, range; nothing built, nothing written
    ("batch-size-0", lambda ws: Spec(ft(ws, *sets("train.batch_size=0"))), r"train.batch_size=0 is out of range \(expected >= 1\)"),
    ("accum-steps-0", lambda ws: Spec(ft(ws, *sets("train.accum_steps=0"))), r"train.accum_steps=0 is out of range"),
    ("workers-negative", lambda ws: Spec(ft(ws, *sets("data.workers=-1"))), r"data.workers=-1 is out of range \(expected >= 0\)"),
    ("mid-dim-negative", lambda ws: Spec(ft(ws, *sets("method.mid_dim=-4"), method="adaptformer")), r"method.mid_dim=-4 is out of range"),
    ("tokens-negative", lambda ws: Spec(ft(ws, *sets("method.tokens=-2"), method="vpt_deep")), r"method.tokens=-2 is out of range"),
    ("arc-dim-0", lambda ws: Spec(ft(ws, *sets("method.dim=0"), method="arc")), r"method.dim=0 is out of range"),
    ("crop-scale-one-number", lambda ws: Spec(ft(ws, *sets("data.crop_scale=[0.5]"))), r"data.crop_scale=\[0.5\] is out of range \(expected 2 values, increasing, each in \(0, 1\]\)"),
    ("crop-scale-decreasing", lambda ws: Spec(ft(ws, *sets("data.crop_scale=[0.9,0.1]"))), r"data.crop_scale=\[0.9, 0.1\] is out of range"),
    ("crop-scale-zero", lambda ws: Spec(ft(ws, *sets("data.crop_scale=[0,1]"))), r"each in \(0, 1\]"),
    ("epochs-0", lambda ws: Spec(ft(ws, *sets("train.epochs=0"))), r"train.epochs=0 is out of range"),
    ("epochs-negative", lambda ws: Spec(ft(ws, *sets("train.epochs=-1"))), r"train.epochs=-1 is out of range"),
    ("lr-negative", lambda ws: Spec(ft(ws, *sets("train.lr=-0.1"))), r"train.lr=-0.1 is out of range \(expected > 0\)"),
    ("label-smoothing-1.5", lambda ws: Spec(ft(ws, *sets("train.label_smoothing=1.5"))), r"in \[0, 1\)"),
    ("drop-path-1", lambda ws: Spec(ft(ws, *sets("model.drop_path=1"))), r"model.drop_path=1.0 is out of range"),
    ("dropout-1", lambda ws: Spec(ft(ws, *sets("method.dropout=1"), method="arc")), r"method.dropout=1.0 is out of range"),
    ("eval-batch-0", lambda ws: Spec(ft(ws, *sets("eval.batch_size=0"))), r"eval.batch_size=0 is out of range"),
    # the options of the methods issue 12 added, and issue 15's trackers
    ("ssf-init-std-negative", lambda ws: Spec(ft(ws, *sets("method.init_std=-1"), method="ssf")), r"method.init_std=-1.0 is out of range \(expected >= 0\)"),
    ("adapter-plus-bottleneck-0", lambda ws: Spec(ft(ws, *sets("method.bottleneck=0"), method="adapter_plus")), r"method.bottleneck=0 is out of range \(expected >= 1\)"),
    ("adapter-plus-drop-path-1", lambda ws: Spec(ft(ws, *sets("method.drop_path=1"), method="adapter_plus")), r"method.drop_path=1.0 is out of range \(expected in \[0, 1\)\)"),
    ("lora-r-0", lambda ws: Spec(ft(ws, *sets("method.r=0"), method="lora")), r"method.r=0 is out of range \(expected >= 1\)"),
    ("dora-alpha-0", lambda ws: Spec(ft(ws, *sets("method.alpha=0"), method="dora")), r"method.alpha=0.0 is out of range \(expected > 0\)"),
    ("lora-dropout-1", lambda ws: Spec(ft(ws, *sets("method.dropout=1"), method="lora")), r"method.dropout=1.0 is out of range"),
    ("log-with-unknown", lambda ws: Spec(ft(ws, *sets("train.log_with=tensorbord"))), r"unknown tracker 'tensorbord'"),
    ("save-every-0", lambda ws: Spec(ft(ws, *sets("train.save_every_steps=0"))), r"train.save_every_steps=0 is out of range"),
    ("img-size-not-patch-multiple", lambda ws: Spec(ft(ws, *sets("model.img_size=30"))), r"model.img_size=30 is not a multiple of test_vit's patch size 16"),
    ("frames-not-tubelet-multiple", lambda ws: Spec(ft(ws, "--model", "video_vit_test", *sets("model.num_frames=5"))), r"model.num_frames=5.*tubelet_size 2"),
    ("unknown-key", lambda ws: Spec(ft(ws, *sets("train.epohcs=3"))), r"did you mean 'train.epochs'"),
    ("wrong-type", lambda ws: Spec(ft(ws, *sets("train.epochs=many"))), r"train.epochs: expected int, got 'many'"),
    ("set-without-equals", lambda ws: Spec(ft(ws, "--set", "train.epochs")), r"--set expects KEY=VALUE"),
    ("unknown-method", lambda ws: Spec(ft(ws, method="prompt_magic")), r"prompt_magic"),  # lora is a method since issue 12
    ("unknown-recipe", lambda ws: Spec(["finetune", "--method", "arc", "--recipe", "nosuch", "--data", str(ws.shards), "--out", str(ws.tmp / "o")]), r"recipe 'nosuch' is neither"),
    ("recipe-bad-yaml", lambda ws: (ws.tmp.joinpath("r.yaml").write_text("train: [1,\n"), Spec(["finetune", "--method", "arc", "--recipe", str(ws.tmp / "r.yaml"), "--data", str(ws.shards), "--out", str(ws.tmp / "o")], [ws.tmp / "r.yaml"]))[1], r"is not valid YAML"),
    ("unknown-model", lambda ws: Spec(ft(ws, "--model", "vit_nonexistent_patch99")), r"unknown model 'vit_nonexistent_patch99'"),
    # ownership: --out and --data, foreign folders, the run's own inputs
    ("out-is-data", lambda ws: Spec(ft(ws, "--overwrite", out=ws.shards)), r"is --data"),
    ("out-inside-data", lambda ws: Spec(ft(ws, "--overwrite", out=ws.shards / "run")), r"lies inside --data"),
    ("out-contains-data", lambda ws: Spec(ft(ws, "--overwrite", out=ws.shards.parent)), r"contains --data"),
    ("out-foreign", lambda ws: Spec(ft(ws, out=foreign(ws)), [ws.tmp / "mine"]), r"not an adaptcli run \(found: thesis.tex; no run.json\); choose a new or empty folder$"),
    ("out-foreign-overwrite", lambda ws: Spec(ft(ws, "--overwrite", out=foreign(ws)), [ws.tmp / "mine"]), r"not an adaptcli run .*choose a new or empty folder$"),
    ("out-is-a-file", lambda ws: (ws.tmp.joinpath("f").write_text("x"), Spec(ft(ws, out=ws.tmp / "f"), [ws.tmp / "f"]))[1], r"is a file, not a folder"),
    ("checkpoint-inside-out", lambda ws: Spec(ft(ws, "--overwrite", "--checkpoint", str(ws.run / "backbone.safetensors"), out=ws.run)), r"holds the backbone checkpoint"),
    ("resume-foreign", lambda ws: Spec(ft(ws, "--resume", out=foreign(ws)), [ws.tmp / "mine"]), r"holds files that are not an adaptcli run \(found: thesis.tex; no run.json\); choose a new or empty folder$"),
    ("resume-other-config", lambda ws: Spec(ft(ws, "--resume", method="arc", out=ws.run)), r"configuration differs from \S+ at '[^']+' \(stored .+, now \S+\)"),
    ("out-holds-a-run", lambda ws: Spec(ft(ws, out=ws.run)), r"already holds an adaptcli run; pass --resume to continue it or --overwrite"),
    ("out-name-too-long", lambda ws: Spec(ft(ws, out=ws.tmp / ("x" * 300))), r"File name too long; choose a shorter name"),
    ("out-under-a-file", lambda ws: (ws.tmp.joinpath("f").write_text("x"), Spec(ft(ws, out=ws.tmp / "f" / "run"), [ws.tmp / "f"]))[1], r"Not a directory; a part of the path is a file"),
    # checkpoints
    ("checkpoint-missing", lambda ws: Spec(ft(ws, "--checkpoint", str(ws.tmp / "nope.pth"))), r"--checkpoint .*nope.pth does not exist"),
    ("checkpoint-truncated-safetensors", lambda ws: Spec(ft(ws, "--checkpoint", str(truncated(ws, "safetensors"))), [ws.tmp / "ckpt.safetensors"]), r"ckpt.safetensors is .*(truncated|damaged)"),
    ("checkpoint-truncated-pth", lambda ws: Spec(ft(ws, "--checkpoint", str(truncated(ws, "pth"))), [ws.tmp / "ckpt.pth"]), r"ckpt.pth is unreadable, probably truncated"),
    ("checkpoint-truncated-npz", lambda ws: Spec(ft(ws, "--checkpoint", str(truncated(ws, "npz"))), [ws.tmp / "ckpt.npz"]), r"ckpt.npz is unreadable, probably truncated"),
    ("checkpoint-not-weights", lambda ws: (ws.tmp.joinpath("notes.pth").write_text("hello"), Spec(ft(ws, "--checkpoint", str(ws.tmp / "notes.pth")), [ws.tmp / "notes.pth"]))[1], r"is not a safetensors, torch or .npz checkpoint"),
    # data
    ("data-missing", lambda ws: Spec(ft(ws, data=ws.tmp / "nowhere")), r"dataset.json not found: prepare the data first"),
    ("data-is-a-source-folder", lambda ws: Spec(ft(ws, data=ws.source)), r"dataset.json not found"),
    ("data-manifest-invalid", lambda ws: (ws.copy(ws.shards, "data").joinpath("dataset.json").write_text("{"), Spec(ft(ws, data=ws.tmp / "data"), [ws.tmp / "data"]))[1], r"is not a valid adaptcli manifest"),
    ("data-one-class", lambda ws: Spec(ft(ws, data=edited_manifest(ws, lambda m: m.update(classes={"0": "red"}))), [ws.tmp / "data"]), r"has 1 class\(es\); classification needs at least two"),
    ("labels-exceed-classes", lambda ws: Spec(ft(ws, *sets("train.feature_cache=false"), data=edited_manifest(ws, lambda m: m.update(classes={"0": "a", "1": "b"}))), [ws.tmp / "data"]), r"label 2 of sample .* is outside the 2 classes of dataset.json"),
    ("train-shards-missing", lambda ws: (ws.copy(ws.shards, "data"), [p.unlink() for p in train_shards(ws.tmp / "data")], Spec(ft(ws, data=ws.tmp / "data"), [ws.tmp / "data"]))[2], r"training shards of .* are missing"),
    ("train-shards-truncated", lambda ws: (ws.copy(ws.shards, "data"), [truncate_in_first_sample(p) for p in train_shards(ws.tmp / "data")], Spec(ft(ws, *sets("train.feature_cache=false"), data=ws.tmp / "data"), [ws.tmp / "data"]))[2], r"no training sample could be read .*truncated member"),
    ("train-shards-truncated-feature-cache", lambda ws: (ws.copy(ws.shards, "data"), [truncate_in_first_sample(p) for p in train_shards(ws.tmp / "data")], Spec(ft(ws, *sets("data.augment=resize", "data.flip=false"), data=ws.tmp / "data"), [ws.tmp / "data"]))[2], r"no training sample could be read .*truncated member"),
    ("train-split-missing", lambda ws: Spec(ft(ws, *sets("data.train_split=nosuch"))), r"has no split 'nosuch' \(it has:"),
    ("image-data-video-model", lambda ws: Spec(ft(ws, "--model", "video_vit_test", *sets("model.num_frames=4"))), r"the shards hold images but 'video_vit_test' is a video model"),
    # eval
    ("eval-not-a-run", lambda ws: Spec(["eval", "--run", str(ws.source)]), r"is not a run folder"),
    ("eval-run-missing", lambda ws: Spec(["eval", "--run", str(ws.tmp / "none")]), r"is not a run folder"),
    ("eval-split-missing", lambda ws: Spec(["eval", "--run", str(ws.run), "--split", "nosuch"]), r"split 'nosuch' is not in"),
    ("eval-bad-views", lambda ws: Spec(["eval", "--run", str(ws.run), "--views", "2y3"]), r"--views expects CLIPSxCROPS"),
    ("eval-damaged-shard", lambda ws: (ws.copy(ws.shards, "data"), truncate_in_first_sample(sorted((ws.tmp / "data").glob("test-*.tar"))[0]), Spec(["eval", "--run", str(ws.run), "--data", str(ws.tmp / "data")], [ws.tmp / "data"]))[2], r"shard .*test-000000.tar is damaged \(truncated member\); .*--skip-damaged"),
    ("eval-other-class-count", lambda ws: Spec(["eval", "--run", str(ws.run), "--data", str(edited_manifest(ws, lambda m: m.update(classes={"0": "a", "1": "b"})))], [ws.tmp / "data"]), r"has 2 classes but the run was trained on 3"),
    ("eval-adapter-without-checkpoint", lambda ws: Spec(["eval", "--adapter", str(ws.tmp / "a.safetensors"), "--data", str(ws.shards)]), r"--adapter needs --checkpoint"),
    ("eval-scores-over-run-file", lambda ws: Spec(["eval", "--run", str(ws.run), "--scores", str(ws.run / "trainable.safetensors")]), r"--scores .*trainable.safetensors would replace a file the evaluation reads"),
    ("eval-scores-into-data", lambda ws: Spec(["eval", "--run", str(ws.run), "--scores", str(ws.shards / "s.safetensors")]), r"would replace a file the evaluation reads"),
    ("eval-scores-is-a-folder", lambda ws: Spec(["eval", "--run", str(ws.run), "--scores", str(ws.tmp)]), r"--scores .* is a folder"),
    ("eval-truncated-weights", lambda ws: (ws.copy(ws.run, "run"), [p.write_bytes(p.read_bytes()[:100]) for p in (ws.tmp / "run").glob("*.safetensors") if p.name != "backbone.safetensors"], Spec(["eval", "--run", str(ws.tmp / "run")], [ws.tmp / "run"]))[2], r"(best|trainable).safetensors is not a readable safetensors file"),
    ("eval-no-weights", lambda ws: (ws.copy(ws.run, "run"), [p.unlink() for p in (ws.tmp / "run").glob("*.safetensors") if p.name != "backbone.safetensors"], Spec(["eval", "--run", str(ws.tmp / "run")], [ws.tmp / "run"]))[2], r"has no trained weights yet"),
    # export
    ("export-out-exists", lambda ws: (ws.tmp.joinpath("m.safetensors").write_text("mine"), Spec(["export", "--run", str(ws.run), "--merge", "--out", str(ws.tmp / "m.safetensors")], [ws.tmp / "m.safetensors"]))[1], r"already exists; pass --overwrite"),
    ("export-over-backbone", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--overwrite", "--out", str(ws.run / "backbone.safetensors")]), r"one of the run's own files"),
    ("export-into-data", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--overwrite", "--out", str(ws.shards / "m.safetensors")]), r"a file it reads"),
    ("export-wrong-suffix", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--out", str(ws.tmp / "m.pt")]), r"must end in .safetensors"),
    ("export-no-mode", lambda ws: Spec(["export", "--run", str(ws.run), "--out", str(ws.tmp / "m.safetensors")]), r"choose exactly one of"),
    ("export-out-is-folder", lambda ws: (ws.tmp.joinpath("d.safetensors").mkdir(), Spec(["export", "--run", str(ws.run), "--merge", "--overwrite", "--out", str(ws.tmp / "d.safetensors")]))[1], r"is a folder"),
    ("export-out-under-a-file", lambda ws: (ws.tmp.joinpath("f").write_text("x"), Spec(["export", "--run", str(ws.run), "--merge", "--out", str(ws.tmp / "f" / "m.safetensors")], [ws.tmp / "f"]))[1], r"/f: File exists"),
    ("export-timm-over-foreign-folder", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--format", "timm", "--overwrite", "--out", str(foreign(ws))], [ws.tmp / "mine"]), r"holds files that are not an adaptcli timm export \(found: thesis.tex; no config.json with an 'adaptcli' section\); choose a new or empty folder$"),
    ("export-timm-over-the-run", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--format", "timm", "--overwrite", "--out", str(ws.run)]), r"one of the run's own files"),
    ("export-timm-over-data", lambda ws: Spec(["export", "--run", str(ws.run), "--full", "--format", "timm", "--overwrite", "--out", str(ws.shards.parent)]), r"a file it reads"),
    # suite (issue 13): the same ownership rules as finetune
    ("suite-out-foreign", lambda ws: (ws.copy(ws.shards, "vtab/dtd"), Spec(["suite", "vtab", "--method", "linear", "--data", str(ws.tmp / "vtab"), "--out", str(foreign(ws)), *TINY, "--no-progress"], [ws.tmp / "mine", ws.tmp / "vtab"]))[1], r"holds files that are not an adaptcli suite \(found: thesis.tex; no suite.json\); choose a new or empty folder$"),
    ("suite-out-inside-data", lambda ws: (ws.copy(ws.shards, "vtab/dtd"), Spec(["suite", "vtab", "--method", "linear", "--data", str(ws.tmp / "vtab"), "--out", str(ws.tmp / "vtab" / "suite"), *TINY, "--no-progress"], [ws.tmp / "vtab"]))[1], r"lies inside --data"),
    # prepare
    ("prepare-other-settings", lambda ws: Spec(prep(ws.source, ws.copy(ws.shards, "data"), "--samples-per-shard", "4"), [ws.tmp / "data"]), r"holds other settings \(samples_per_shard: stored 6, now 4\): pass --overwrite"),
    ("prepare-unknown-dataset", lambda ws: Spec(["prepare", "nosuch", str(ws.source), "--shards", str(ws.tmp / "o")]), r"unknown dataset 'nosuch'"),
    ("prepare-source-missing", lambda ws: Spec(prep(ws.tmp / "nowhere", ws.tmp / "o")), r"does not exist"),
    ("prepare-shards-is-a-file", lambda ws: (ws.tmp.joinpath("f").write_text("x"), Spec(prep(ws.source, ws.tmp / "f"), [ws.tmp / "f"]))[1], r"is a file, not a folder"),
    ("prepare-shards-foreign", lambda ws: Spec(prep(ws.source, foreign(ws)), [ws.tmp / "mine"]), r"not adaptcli shards \(found: thesis.tex; no dataset.json\); choose a new or empty folder$"),
    ("prepare-shards-foreign-overwrite", lambda ws: Spec(prep(ws.source, foreign(ws), "--overwrite"), [ws.tmp / "mine"]), r"not adaptcli shards"),
    ("prepare-shards-are-the-source", lambda ws: Spec(prep(ws.source, ws.source, "--overwrite")), r"not adaptcli shards"),
    ("prepare-no-split-folders", lambda ws: (ws.tmp.joinpath("empty").mkdir(), Spec(prep(ws.tmp / "empty", ws.tmp / "o")))[1], r"has no split folders"),
    ("prepare-empty-class", lambda ws: Spec(prep(source_with(ws, lambda s: (s / "train" / "purple").mkdir()), ws.tmp / "o"), [ws.tmp / "src"]), r"class folder .*purple has no image files; remove it or pass --allow-empty-classes"),
    ("prepare-name-too-long", lambda ws: Spec(prep(ws.source, ws.tmp / ("x" * 300))), r"File name too long"),
    ("prepare-under-a-file", lambda ws: (ws.tmp.joinpath("f").write_text("x"), Spec(prep(ws.source, ws.tmp / "f" / "o"), [ws.tmp / "f"]))[1], r"Not a directory"),
    ("prepare-split-unknown", lambda ws: Spec(prep(ws.source, ws.tmp / "o", "--splits", "train,nosuch")), r"has no split 'nosuch'"),
    # inspect-params
    ("inspect-bad-range", lambda ws: Spec(["inspect-params", "--model", "test_vit", "--method", "adaptformer", "--num-classes", "3", "--set", "method.mid_dim=0"]), r"method.mid_dim=0 is out of range"),
    ("inspect-unknown-model", lambda ws: Spec(["inspect-params", "--model", "nosuch_model", "--method", "arc", "--num-classes", "3"]), r"unknown model 'nosuch_model'"),
    # skippable samples: exit 0, listed under skipped; hidden names never data
    ("prepare-corrupt-image", lambda ws: Spec(prep(source_with(ws, lambda s: (s / "train" / "red" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")), ws.tmp / "o"), [ws.tmp / "src"],
                                              check=lambda ws: _assert("red/bad" in skipped_keys(ws.tmp / "o"))), None),
    ("prepare-decompression-bomb", lambda ws: Spec(prep(source_with(ws, lambda s: _bomb(s / "train" / "red" / "huge.png")), ws.tmp / "o"), [ws.tmp / "src"],
                                                   check=lambda ws: _assert("decompression bomb" in skipped_keys(ws.tmp / "o").get("red/huge", ""))), None),
    ("prepare-hidden-folder-and-files", lambda ws: Spec(prep(source_with(ws, _hidden), ws.tmp / "o"), [ws.tmp / "src"],
                                                        check=lambda ws: _assert(classes(ws.tmp / "o") == ["blue", "green", "red"] and _samples(ws.tmp / "o") == 42)), None),
    ("prepare-empty-class-allowed", lambda ws: Spec(prep(source_with(ws, lambda s: (s / "train" / "purple").mkdir()), ws.tmp / "o", "--allow-empty-classes"), [ws.tmp / "src"],
                                                    check=lambda ws: _assert("purple" in classes(ws.tmp / "o"))), None),
    ("prepare-16-bit-png", lambda ws: Spec(prep(source_with(ws, lambda s: png16(s / "train" / "red" / "grey16.png", 32768)), ws.tmp / "o"), [ws.tmp / "src"],
                                           check=lambda ws: _assert(_stored_pixel(ws.tmp / "o", "red/grey16") == 128)), None),
    ("prepare-own-output-inside-source", lambda ws: Spec(prep(source_with(ws, _prepared_inside), ws.tmp / "src" / "shards"), [],
                                                         check=lambda ws: _assert(list(json.loads((ws.tmp / "src" / "shards" / "dataset.json").read_text())["splits"]) == ["test", "train", "validation"])), None),
    ("eval-skip-damaged", lambda ws: (ws.copy(ws.run, "run"), ws.copy(ws.shards, "data"), truncate_in_first_sample(sorted((ws.tmp / "data").glob("test-*.tar"))[0]),
                                      Spec(["eval", "--run", str(ws.tmp / "run"), "--data", str(ws.tmp / "data"), "--skip-damaged"], [ws.tmp / "data"],
                                           check=lambda ws: _assert(json.loads((ws.tmp / "run" / "eval.json").read_text())["missing_samples"] == 6)))[3], None),
]

SUBPROCESS_CASES: list[tuple[str, Callable[[WS], Spec], str | None]] = [
    ("nodac-out-not-writable", lambda ws: (_readonly_dir(ws.tmp / "locked"), Spec(ft(ws, out=ws.tmp / "locked" / "run"), [ws.tmp / "locked"], wrap="nodac"))[1], r"locked/run: Permission denied; check the permissions"),
    ("nodac-shards-not-writable", lambda ws: (_readonly_dir(ws.tmp / "locked"), Spec(prep(ws.source, ws.tmp / "locked" / "o"), [ws.tmp / "locked"], wrap="nodac"))[1], r"Permission denied"),
    ("nodac-export-not-writable", lambda ws: (_readonly_dir(ws.tmp / "locked"), Spec(["export", "--run", str(ws.run), "--merge", "--out", str(ws.tmp / "locked" / "m.safetensors")], [ws.tmp / "locked"], wrap="nodac"))[1], r"Permission denied"),
    ("nodac-unreadable-weights", lambda ws: (ws.copy(ws.run, "run"), [p.chmod(0) for p in (ws.tmp / "run").glob("*.safetensors") if p.name != "backbone.safetensors"], Spec(["eval", "--run", str(ws.tmp / "run")], [ws.tmp / "run"], wrap="nodac"))[2], r"Permission denied"),
    ("nodac-unreadable-image", lambda ws: Spec(prep(source_with(ws, lambda s: (s / "train" / "red" / "0000.jpg").chmod(0)), ws.tmp / "o"), [ws.tmp / "src"], wrap="nodac",
                                               check=lambda ws: _assert("Permission denied" in skipped_keys(ws.tmp / "o").get("red/0000", ""))), None),
    ("nodac-unreadable-class-folder", lambda ws: Spec(prep(source_with(ws, lambda s: (s / "train" / "green").chmod(0)), ws.tmp / "o"), [ws.tmp / "src"], wrap="nodac",
                                                      check=lambda ws: _assert(any("unreadable folder" in r for r in skipped_keys(ws.tmp / "o").values()))), None),
    # issue 35: the projection (a few samples encoded first) does not fit a 64 kB tmpfs: refused before a shard
    ("disk-full-prepare-projected", lambda ws: Spec(prep(ws.source, ws.tmp / "mnt" / "o"), [], wrap="full"), r"--shards \S+mnt/o: the projected \S+ \S+ of shards do not fit in the 6\d\.\d KiB free there: .* --ignore-space"),
    ("disk-full-prepare", lambda ws: Spec(prep(ws.source, ws.tmp / "mnt" / "o", "--ignore-space"), [], wrap="full"), r"mnt/o/\S+: No space left on device; the disk is full"),
    ("disk-full-finetune", lambda ws: Spec(ft(ws, out=ws.tmp / "mnt" / "run"), [], wrap="full"), r"mnt/run\S*: No space left on device; the disk is full"),
    ("disk-full-export", lambda ws: Spec(["export", "--run", str(ws.run), "--full", "--out", str(ws.tmp / "mnt" / "m.safetensors")], [], wrap="full"), r"mnt/m.safetensors: No space left on device"),
    ("disk-full-report", lambda ws: Spec(["report", str(ws.run), "--out", str(ws.tmp / "mnt" / "r.md")], [ws.run], wrap="filled"), r"mnt/r.md: No space left on device"),
    ("disk-full-plot", lambda ws: Spec(["report", str(ws.run), "--plot", str(ws.tmp / "mnt" / "p.png")], [ws.run], wrap="filled"), r"mnt/p.png: No space left on device|no run has an accuracy"),
    ("disk-full-scores", lambda ws: Spec(["eval", "--run", str(ws.copy(ws.run, "run")), "--scores", str(ws.tmp / "mnt" / "s.safetensors")], [], wrap="filled"), r"mnt/s.safetensors: No space left on device"),
    ("disk-full-prepare-filled", lambda ws: Spec(prep(ws.source, ws.tmp / "mnt" / "o", "--ignore-space"), [], wrap="filled"), r"mnt/o\S*: No space left on device"),
    ("read-only-finetune", lambda ws: Spec(ft(ws, out=ws.tmp / "mnt" / "run"), [], wrap="ro"), r"Read-only file system; the file system is read-only"),
    ("read-only-prepare", lambda ws: Spec(prep(ws.source, ws.tmp / "mnt" / "o"), [], wrap="ro"), r"Read-only file system"),
    ("read-only-export", lambda ws: Spec(["export", "--run", str(ws.run), "--merge", "--out", str(ws.tmp / "mnt" / "m.safetensors")], [], wrap="ro"), r"Read-only file system"),
]


def _assert(condition: bool) -> None:
    assert condition


def _bomb(path: Path) -> None:
    """A 1-bit PNG of 20000 x 10000 pixels (a few kB on disk), beyond Pillow's default pixel limit."""
    from PIL import Image

    Image.new("1", (20000, 10000)).save(path)


def _hidden(src: Path) -> None:
    from adaptcli.data.synthetic import write_image

    write_image(src / "train" / ".ipynb_checkpoints" / "x.jpg", np.zeros((32, 32, 3), np.uint8))
    write_image(src / "train" / "red" / ".hidden.jpg", np.zeros((32, 32, 3), np.uint8))
    (src / "train" / "red" / ".DS_Store").write_bytes(b"\0\0")


def _prepared_inside(src: Path) -> None:
    result = runner.invoke(app, prep(src, src / "shards"))
    assert result.exit_code == 0, result.output


def _samples(out: Path) -> int:
    return sum(s["samples"] for s in json.loads((out / "dataset.json").read_text())["splits"].values())


def _stored_pixel(out: Path, key: str) -> int:
    import io

    from PIL import Image

    from adaptcli.data.stream.tar_reader import iter_samples

    for shard in sorted(out.glob("*.tar")):
        for sample in iter_samples(shard):
            if sample["__key__"] == key:
                return int(np.asarray(Image.open(io.BytesIO(sample["png"])).convert("RGB"))[0, 0, 0])
    raise AssertionError(f"{key} not stored")


def _readonly_dir(path: Path) -> None:
    path.mkdir()
    path.chmod(0o555)


@pytest.fixture(scope="session")
def tiny_run(tiny_shards, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tiny_run") / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tiny_shards),
                                 "--out", str(run), *TINY, "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def ws(tiny_source, tiny_shards, tiny_run, tmp_path) -> WS:
    return WS(tiny_source, tiny_shards, tiny_run, tmp_path)


def _error_lines(stderr: str) -> list[str]:
    """What the user reads: progress bars, Python warnings and library log lines left out."""
    noise = re.compile(r"(Warning: |warnings.warn\(|^WARNING:|^warning: |^note: |^Cosine annealing)")
    return [line for line in message_lines(stderr) if not noise.search(line)]


def _check(ws: WS, spec: Spec, expected: str | None, exit_code: int, stderr: str, output: str) -> None:
    if expected is None:
        assert exit_code == 0, output[-3000:]
        assert spec.check is not None
        spec.check(ws)
        return
    assert exit_code == 2, output[-3000:]
    lines = _error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: ") and re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in output


def _watched(ws: WS, spec: Spec) -> dict[str, str]:
    return checksums(ws.source, ws.shards, ws.run, *spec.watch)


@pytest.mark.parametrize("name, build, expected", CASES, ids=[case[0] for case in CASES])
def test_fault(ws, name, build, expected):
    spec = build(ws)
    before = _watched(ws, spec)
    result = runner.invoke(app, spec.argv)
    _check(ws, spec, expected, result.exit_code, result.stderr, result.output)
    assert _watched(ws, spec) == before, "an input changed"


def _can(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@pytest.mark.parametrize("name, build, expected", SUBPROCESS_CASES, ids=[case[0] for case in SUBPROCESS_CASES])
def test_fault_in_a_subprocess(ws, name, build, expected):
    spec = build(ws)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [PYTHON, "-m", "adaptcli", *spec.argv]
    if spec.wrap == "nodac":
        if os.geteuid() != 0:
            pytest.skip("permission cases need root (to drop its override) or a file mode root cannot bypass")
        problem = _can([*NO_DAC, "true"])
        if problem:
            pytest.skip(f"setpriv cannot drop CAP_DAC_OVERRIDE here: {problem}")
        command = [*NO_DAC, *command]
    elif spec.wrap in ("full", "filled", "ro"):
        mount = ws.tmp / "mnt"
        mount.mkdir(exist_ok=True)
        options = "ro,size=64k" if spec.wrap == "ro" else "size=64k"
        problem = _can(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o {options} tmpfs {mount}"])
        if problem:
            pytest.skip(f"no private mount namespace with a tmpfs here (unshare -m): {problem}")
        # "filled": no byte left, so even a small report or plot meets a full disk
        fill = f" && (head -c 1M /dev/zero > {mount}/.filler 2>/dev/null; true)" if spec.wrap == "filled" else ""
        command = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o {options} tmpfs {mount}{fill} && exec "$0" "$@"',
                   *command]
    before = _watched(ws, spec)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    finally:
        for path in ws.tmp.rglob("*"):  # give root's files back their modes so the checks can read them
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    _check(ws, spec, expected, done.returncode, done.stderr, done.stdout + done.stderr)
    after = _watched(ws, spec)
    before = {k: v for k, v in before.items() if v != "<unreadable>"}
    assert {k: after[k] for k in before} == before, "an input changed"


def test_the_table_is_large_enough():
    assert len(CASES) + len(SUBPROCESS_CASES) >= 60


def test_timm_folder_export_replaces_only_its_own_folder(ws):
    """A folder format (issue 15) writes a folder: an empty one is used, an existing export is replaced
    only with --overwrite, and only when it is a timm folder adaptcli wrote."""
    out = ws.tmp / "timm"
    out.mkdir()
    argv = ["export", "--run", str(ws.run), "--merge", "--format", "timm", "--out", str(out)]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    again = runner.invoke(app, argv)
    assert again.exit_code == 2 and "already holds an adaptcli timm export; pass --overwrite" in again.output, again.output
    replaced = runner.invoke(app, [*argv, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    (out / "notes.txt").write_text("mine")  # no longer only what the export wrote
    refused = runner.invoke(app, [*argv, "--overwrite"])
    assert refused.exit_code == 2 and "holds entries adaptcli did not write (notes.txt)" in refused.output, refused.output
    assert (out / "notes.txt").read_text() == "mine"
