"""``adaptcli env``: versions and devices, to paste into a bug report."""

from __future__ import annotations

import json
import os
import platform
from typing import Annotated, Any

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Getting started"
#: The distributions whose versions a report needs (installed name, as pip knows it).
PACKAGES = ("adaptcli", "torch", "torchvision", "timm", "accelerate", "peft", "huggingface_hub", "webdataset", "av",
            "pillow", "numpy", "safetensors", "typer", "pyyaml", "onnx", "onnxruntime")
#: The video decoders the datasets adaptcli reads need: SSv2 (VP9 webm), Kinetics (H.264, some VP9/AV1/HEVC),
#: UCF101 and HMDB51 (XviD/DivX AVI: mpeg4, msmpeg4), older MPEG-2 and MJPEG clips.
VIDEO_DECODERS = ("vp9", "vp8", "h264", "hevc", "av1", "mpeg4", "msmpeg4", "mpeg2video", "mjpeg")


def video_support() -> dict[str, Any]:
    """The FFmpeg inside PyAV (which decodes every clip at prepare time) and which decoders it has."""
    try:
        import av
        from av.codec import Codec
    except ImportError as exc:
        return {"ffmpeg": None, "decoders": {}, "error": str(exc)}
    found: dict[str, bool] = {}
    for name in VIDEO_DECODERS:
        try:
            Codec(name, "r")
            found[name] = True
        except Exception:  # av raises UnknownCodecError (a ValueError) or FFmpegError by version
            found[name] = False
    libavcodec = av.library_versions.get("libavcodec")
    return {"ffmpeg": getattr(av, "ffmpeg_version_info", None),
            "libavcodec": ".".join(map(str, libavcodec)) if libavcodec else None, "decoders": found}


def environment() -> dict[str, Any]:
    """Python, platform, package versions (None when not installed) and what torch sees."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "packages": versions,
        "torch_cuda_build": torch.version.cuda, "cuda_available": cuda, "gpus": gpus,
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "video": video_support(),
    }


def render(env: dict[str, Any]) -> str:
    lines = [f"python {env['python']} on {env['platform']}, {env['cpu_count']} CPUs"]
    lines += [f"{name:<12} {v if v is not None else 'not installed'}" for name, v in env["packages"].items()]
    build = f"built with CUDA {env['torch_cuda_build']}" if env["torch_cuda_build"] else "built for CPU only"
    if env["cuda_available"]:
        lines.append(f"CUDA: {len(env['gpus'])} GPU(s): {', '.join(env['gpus'])}; torch {build}; cuDNN {env['cudnn']}; "
                     f"bf16 {'supported' if env['bf16_supported'] else 'not supported'}")
    else:
        lines.append(f"CUDA: no GPU visible to torch ({build}); training runs on the CPU in fp32")
    if env["mps_available"]:
        lines.append("MPS (Apple GPU): available")
    lines.append(f"torch threads: {env['torch_threads']} intra-op, {env['torch_interop_threads']} inter-op")
    video = env["video"]
    if video["ffmpeg"] is None and not video["decoders"]:
        lines.append(f"video: PyAV not importable ({video.get('error')}); prepare cannot decode clips")
    else:
        have = [name for name, ok in video["decoders"].items() if ok]
        missing = [name for name, ok in video["decoders"].items() if not ok]
        lines.append(f"video: PyAV with FFmpeg {video['ffmpeg'] or '?'} (libavcodec {video['libavcodec'] or '?'}); "
                     f"decoders: {', '.join(have) or 'none'}"
                     + (f"; MISSING: {', '.join(missing)} (clips in these codecs are skipped as unreadable)"
                        if missing else ""))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("env", rich_help_panel=PANEL)
    @user_errors
    def env_command(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of lines.")] = False,
    ) -> None:
        """Print versions, devices, bf16 support, torch's threads and PyAV's FFmpeg with its video decoders:
        paste it into a bug report.

        Example: adaptcli env
        """
        found = environment()
        typer.echo(json.dumps(found, indent=2) if as_json else render(found))
