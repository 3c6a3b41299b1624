"""Determinism across worker counts, resume after a kill, refusing a folder that holds other data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptcli.data.prepare import encode as encode_module
from adaptcli.data.prepare import prepare as prepare_module

REPO = Path(__file__).resolve().parents[2]


def _tree(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _prepare(run_cli, src, out, *extra):
    result = run_cli("prepare", "ssv2", src, "--shards", out, "--samples-per-shard", "5", "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return result


def test_same_output_whatever_the_worker_count(ssv2, ssv2_shards, tmp_path, run_cli):
    _prepare(run_cli, ssv2["root"], tmp_path / "w0", "--workers", "0")
    _prepare(run_cli, ssv2["root"], tmp_path / "w3", "--workers", "3")
    reference = _tree(ssv2_shards)  # built with --workers 2
    assert _tree(tmp_path / "w0") == reference
    assert _tree(tmp_path / "w3") == reference
    assert len([n for n in reference if n.endswith(".tar")]) == 5 + 2 + 1


def test_resume_after_interruption_in_process(ssv2, ssv2_shards, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "out"
    calls = {"n": 0}
    real = encode_module.encode_item

    def dying(item, options):
        calls["n"] += 1
        if calls["n"] == 13:  # in the middle of the third train shard
            raise KeyboardInterrupt
        return real(item, options)

    monkeypatch.setattr(prepare_module, "encode_item", dying)
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                     "--no-progress", "--workers", "0")
    assert result.exit_code != 0
    assert not (out / "dataset.json").exists()
    names = sorted(p.name for p in out.iterdir())
    assert "train-000000.tar" in names and "train-000001.tar" in names and "train-000002.tar" not in names
    assert "train-000002.tar.tmp" in names  # the shard being written when it stopped
    monkeypatch.setattr(prepare_module, "encode_item", real)
    result = _prepare(run_cli, ssv2["root"], out, "--workers", "2")
    assert "2 reused from an earlier run" in result.output
    assert _tree(out) == _tree(ssv2_shards)


def test_resume_after_sigkill(ssv2, ssv2_shards, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "adaptcli", "prepare", "ssv2", str(ssv2["root"]), "--shards", str(out),
           "--samples-per-shard", "5", "--workers", "0", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not (out / "train-000001.tar").exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a half-written shard with its final name would be the worst case: fake one
    if not (out / "dataset.json").exists():
        (out / "train-000004.tar").write_bytes(b"partial")
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert _tree(out) == _tree(ssv2_shards)


def test_skip_reason_is_the_same_in_any_process(ssv2):
    """The resumed-prepare difference on the lowest env: torchvision < 0.22 turns PyAV's logging on at
    import, and PyAV then appends the process's last FFmpeg log line to its errors, so a skip reason
    recorded in-process (after some test imported torchvision) differed from a fresh process's."""
    import av

    from adaptcli.data.prepare.video_decode import BadVideo, decode_to_jpeg

    corrupt = ssv2["root"] / "20bn-something-something-v2" / f"{ssv2['corrupt']}.webm"
    level, reasons = av.logging.get_level(), []
    try:
        for logging_level in (None, av.logging.ERROR):
            av.logging.set_level(logging_level)
            with pytest.raises(BadVideo) as info:
                decode_to_jpeg(corrupt, 256, 90)
            reasons.append(str(info.value))
    finally:
        av.logging.set_level(level)
    assert reasons[0] == reasons[1] and reasons[0].startswith("unreadable: InvalidDataError: [Errno ")
    assert "\n" not in reasons[0] and "last error log" not in reasons[0]


def test_other_settings_refused_unless_overwrite(ssv2, tmp_path, run_cli):
    out = tmp_path / "out"
    _prepare(run_cli, ssv2["root"], out, "--splits", "test")
    again = _prepare(run_cli, ssv2["root"], out, "--splits", "test")
    assert "1 reused" in again.output
    changed = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                      "--splits", "test", "--quality", "50", "--no-progress")
    assert changed.exit_code == 2 and "--overwrite" in changed.output and "quality" in changed.output
    assert len(changed.output.strip().splitlines()) == 1
    other = run_cli("prepare", "imagefolder", tmp_path, "--shards", out, "--no-progress")
    assert other.exit_code == 2  # a different dataset (or no class folders): nothing written
    replaced = _prepare(run_cli, ssv2["root"], out, "--splits", "test", "--quality", "50", "--overwrite")
    assert "reused" not in replaced.output
    assert json.loads((out / "dataset.json").read_text())["settings"]["quality"] == 50


def test_foreign_folder_refused(ssv2, tmp_path, run_cli):
    """A folder adaptcli did not write is never replaced, and the message never suggests --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "backup.tar").write_bytes(b"also mine")
    for extra in ([], ["--overwrite"]):
        result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--splits", "test", "--no-progress",
                         *extra)
        assert result.exit_code == 2, result.output
        assert "not adaptcli shards" in result.output and "--overwrite" not in result.output
    assert (out / "notes.txt").read_text() == "mine" and (out / "backup.tar").read_bytes() == b"also mine"
    assert sorted(p.name for p in out.iterdir()) == ["backup.tar", "notes.txt"]


def test_shards_inside_the_source_are_not_scanned(tmp_path, run_cli):
    """prepare SRC --shards SRC/shards twice: the second run reuses, never reads its own output."""
    from adaptcli.data.synthetic import write_image_folder
    from tests.engine.conftest import colour_images

    src = tmp_path / "src"
    write_image_folder(src, {"train": {"a": colour_images(2, (200, 0, 0), 1), "b": colour_images(2, (0, 0, 200), 2)}})
    for _ in range(2):
        result = run_cli("prepare", "imagefolder", src, "--shards", src / "shards", "--no-progress")
        assert result.exit_code == 0, result.output
    manifest = json.loads((src / "shards" / "dataset.json").read_text())
    assert list(manifest["splits"]) == ["train"] and manifest["splits"]["train"]["samples"] == 4


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from typer.testing import CliRunner; from adaptcli.cli.app import app; "
            "r = CliRunner().invoke(app, ['prepare', '--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'av', 'webdataset', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("content", [None, "{not json", '{"version": 1}'])
def test_read_manifest_errors(tmp_path, content):
    from adaptcli.data.manifest import read_manifest
    from adaptcli.errors import AdaptError

    if content is not None:
        (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(AdaptError) as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value)
