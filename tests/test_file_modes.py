"""Weights adaptcli writes are readable as any new file is: safetensors alone would create them 0600."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from adaptcli.io import save_tensors


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_tensors_take_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        save_tensors(tmp_path / "w.safetensors", {"a": torch.zeros(2)}, {"format": "x"})
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == mode  # the same as an ordinary file
