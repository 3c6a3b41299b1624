"""timm's augmentations on adaptcli's batches: mixup/cutmix targets, RandAugment per clip, cube erasing,
and a run that trains with all of them and resumes exactly."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import TrainConfig, resolve
from adaptcli.data.stream.clip_augment import ClipRandAugment
from adaptcli.engine.batch_augment import BatchAugment
from adaptcli.errors import ConfigError
from adaptcli.io import read_safetensors
from tests.engine.conftest import TINY


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixup_and_cutmix_targets_sum_to_one_with_smoothing_inside(mixup, cutmix):
    torch.manual_seed(0)
    np.random.seed(0)
    augment = BatchAugment(TrainConfig(mixup=mixup, cutmix=cutmix, label_smoothing=0.1, batch_size=4), 5, "cpu")
    clips = torch.randn(4, 3, 2, 8, 8)
    original = clips.clone()
    labels = torch.tensor([0, 1, 2, 3])
    for _ in range(5):
        mixed, targets = augment(clips.clone(), labels)
        assert mixed.shape == clips.shape and targets.shape == (4, 5)
        torch.testing.assert_close(targets.sum(1), torch.ones(4))
        assert targets.min() >= 0.1 / 5 - 1e-7  # smoothing puts mass on every class
        assert set(targets.argmax(1).tolist()) <= {0, 1, 2, 3}
        if cutmix and not mixup:  # a box pasted from the reversed batch, the same on every frame
            changed = (mixed != original).any(dim=1)  # B x T x H x W
            assert torch.equal(changed[:, 0], changed[:, 1])


def test_cube_erasing_erases_one_box_on_every_frame():
    random.seed(3)
    torch.manual_seed(3)
    augment = BatchAugment(TrainConfig(random_erasing=1.0), 5, "cpu")
    clips = torch.zeros(2, 3, 4, 16, 16)
    erased, labels = augment(clips.clone(), torch.tensor([1, 2]))
    assert labels.tolist() == [1, 2]  # no mixing: hard labels stay
    touched = (erased != 0).any(dim=1)  # B x T x H x W
    for b in range(2):
        assert touched[b, 0].any()
        assert all(torch.equal(touched[b, 0], touched[b, t]) for t in range(4))


def test_rand_augment_applies_the_same_ops_to_every_frame_of_a_clip():
    augment = ClipRandAugment("rand-m9-n3-mstd0.5-inc1", (0.485, 0.456, 0.406))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    clip = np.stack([frame] * 4)
    before = random.getstate(), np.random.get_state()[1].copy()
    outs = [augment(clip, random.Random(seed)) for seed in range(6)]
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])  # restored
    for out in outs:
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[0], out[t]) for t in range(4))  # one draw per clip
    assert sum(not np.array_equal(out[0], frame) for out in outs) >= 4  # and it does change frames
    assert len({out.tobytes() for out in outs}) >= 4  # different clips draw differently
    again = augment(clip, random.Random(2))
    assert np.array_equal(again, outs[2])  # a pure function of the sample's generator


@pytest.mark.parametrize("sets, message", [
    (["data.rand_augment=flip-m9"], "not a timm RandAugment string"),
    (["train.mixup=0.8", "train.batch_size=3"], "even train.batch_size"),
    (["data.rand_augment=rand-m7-n4", "data.decode=cuda"], "set data.decode=cpu"),
])
def test_bad_augmentation_settings_are_one_line(sets, message):
    with pytest.raises(ConfigError, match=message) as refused:
        resolve("quick", "lora", sets)
    assert "\n" not in str(refused.value)


AUGMENT = ["--set", "train.mixup=0.8", "--set", "train.cutmix=1.0", "--set", "train.label_smoothing=0.1",
           "--set", "train.random_erasing=0.25", "--set", "data.rand_augment=rand-m7-n4-mstd0.5-inc1",
           "--set", "train.epochs=2", "--set", "train.keep_checkpoints=3", "--set", "method.r=4",
           "--set", "data.workers=2"]


def test_a_run_with_every_augmentation_trains_and_resumes_exactly(image_shards, tmp_path):
    runner = CliRunner()

    def finetune(out, *extra):
        result = runner.invoke(app, ["finetune", "--method", "lora", "--recipe", "quick", "--data", str(image_shards),
                                     "--out", str(out), *TINY, *AUGMENT, *extra])
        assert result.exit_code == 0, result.output
        return result

    finetune(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "epoch-0002")
    for name in ("summary.json", "trainable.safetensors", "best.safetensors"):
        (tmp_path / "b" / name).unlink(missing_ok=True)
    assert "resumed from" in finetune(tmp_path / "b", "--resume").output
    a, _ = read_safetensors(tmp_path / "a" / "trainable.safetensors")
    b, _ = read_safetensors(tmp_path / "b" / "trainable.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
