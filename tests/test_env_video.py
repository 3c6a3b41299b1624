"""``adaptcli env`` names what a video bug report needs: PyAV's FFmpeg and its decoders for the datasets'
codecs, huggingface_hub's version and torch's thread counts (issue 32 item 9)."""

from __future__ import annotations

import json
from importlib.metadata import version

import av
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.cli.env_cmd import VIDEO_DECODERS

runner = CliRunner()


def test_env_json_has_ffmpeg_decoders_hub_and_threads():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["packages"]["huggingface_hub"] == version("huggingface_hub")
    assert found["torch_threads"] == torch.get_num_threads()
    assert found["torch_interop_threads"] == torch.get_num_interop_threads()
    video = found["video"]
    assert video["ffmpeg"] == av.ffmpeg_version_info
    assert set(video["decoders"]) == set(VIDEO_DECODERS) >= {"vp9", "h264", "mpeg4"}
    for name, present in video["decoders"].items():
        assert present == (name in av.codecs_available)  # what PyAV itself lists
    assert video["decoders"]["vp9"] and video["decoders"]["h264"] and video["decoders"]["mpeg4"]


def test_env_lines_name_ffmpeg_and_threads():
    lines = runner.invoke(app, ["env"]).stdout.splitlines()
    video = next(line for line in lines if line.startswith("video: "))
    assert f"FFmpeg {av.ffmpeg_version_info} " in video and "vp9, " in video and "h264" in video and "mpeg4" in video
    assert f"torch threads: {torch.get_num_threads()} intra-op" in "\n".join(lines)
    assert any(line.startswith("huggingface_hub ") for line in lines)
