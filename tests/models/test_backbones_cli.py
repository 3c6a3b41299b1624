"""The backbones through the CLI: parameter counts, ``--checkpoint``, pretrained hub names offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from adaptcli.cli.app import app
from tests.models.backbone_zoo import build
from tests.models.original_layouts import VideoMAEReference, training_checkpoint

runner = CliRunner()


def test_adaptformer_on_video_vit_base_counts_table_1() -> None:
    result = runner.invoke(app, [
        "inspect-params", "--model", "video_vit_base_patch16", "--method", "adaptformer",
        "--num-classes", "174", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method_params"] == 1_189_632
    # timm ViT-B/16 without head, less class token and learned positions, plus the kernel's time axis
    # (its final norm becomes fc_norm: same count)
    assert report["backbone_params"] == 85_798_656 - 768 - 197 * 768 + 768 * 3 * 16 * 16
    assert report["head_params"] == 768 * 174 + 174


def test_inspect_with_a_videomae_checkpoint_prints_the_load_report(tmp_path: Path) -> None:
    path = tmp_path / "videomae.pth"
    torch.save(training_checkpoint(VideoMAEReference().state_dict()), path)
    result = runner.invoke(app, [
        "inspect-params", "--model", "video_vit_test", "--method", "arc", "--num-classes", "5",
        "--set", "model.num_frames=4", "--checkpoint", str(path), "--json",
    ])
    assert result.exit_code == 0, result.output
    assert "videomae-finetune" in result.stderr and "loaded" in result.stderr
    assert json.loads(result.stdout)["method"] == "arc"


def test_unsafe_checkpoint_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": build("video_vit").state_dict(), "hook": print}, path)
    result = runner.invoke(app, [
        "inspect-params", "--model", "video_vit_test", "--method", "linear", "--num-classes", "5",
        "--checkpoint", str(path),
    ])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to load") and "builtins.print" in lines[0]


def test_pretrained_hub_name_offline_says_to_pass_a_checkpoint() -> None:
    code = (
        "from adaptcli.models.config import ModelConfig\n"
        "from adaptcli.models.build import create_backbone\n"
        "from adaptcli.errors import AdaptError\n"
        "for name in ('vit_tiny_patch16_224', 'video_vit_test'):\n"
        "    try:\n"
        "        create_backbone(ModelConfig(name=name, pretrained=True), 3)\n"
        "    except AdaptError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    assert all("pass --checkpoint FILE" in line for line in lines)
