"""Stand-ins of the real dataset layouts, built once per session in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.data import standins  # noqa: E402


@pytest.fixture(scope="session")
def ssv2(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ssv2")
    info = standins.build_ssv2(root)
    info["root"] = root
    return info


@pytest.fixture(scope="session")
def run_cli():
    from typer.testing import CliRunner

    from adaptcli.cli.app import app

    def run(*args: str):
        runner = CliRunner()
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(scope="session")
def ssv2_shards(ssv2, tmp_path_factory, run_cli) -> Path:
    out = tmp_path_factory.mktemp("ssv2_shards")
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                     "--workers", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def image_shards(tmp_path_factory, run_cli) -> Path:
    src = standins.build_imagefolder(tmp_path_factory.mktemp("imgs"), corrupt=False)
    out = tmp_path_factory.mktemp("img_shards")
    result = run_cli("prepare", "imagefolder", src, "--shards", out, "--samples-per-shard", "3",
                     "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    return out
