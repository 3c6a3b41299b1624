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
PACKAGES = ("adaptcli", "torch", "torchvision", "timm", "accelerate", "peft", "webdataset", "av", "pillow",
            "numpy", "safetensors", "typer", "pyyaml", "onnx", "onnxruntime")


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
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("env", rich_help_panel=PANEL)
    @user_errors
    def env_command(
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of lines.")] = False,
    ) -> None:
        """Print versions, devices and bf16 support: paste it into a bug report.

        Example: adaptcli env
        """
        found = environment()
        typer.echo(json.dumps(found, indent=2) if as_json else render(found))
