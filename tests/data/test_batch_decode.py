"""``data.decode: cuda``'s batch path, run here on the CPU: Pillow's resize reproduced pass by pass, and an
encoded training stream decoded in the training process equal to the workers' decoded stream."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from adaptcli.data.stream.batch_decode import decode_batch, resample
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.train import train_loader
from adaptcli.data.stream.transforms import random_resized_box
from tests.engine.conftest import image_shards, video_shards  # noqa: F401


def _pil(arr: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR, box=box)).astype(int)


def _ours(arr: np.ndarray, box, size: int) -> np.ndarray:
    return resample(torch.from_numpy(arr).permute(2, 0, 1).contiguous(), box, size).permute(1, 2, 0).numpy().astype(int)


def test_each_pass_alone_is_pillows_bit_for_bit():
    rng = random.Random(1)
    for trial in range(150):
        long, size = rng.randint(40, 300), rng.choice([16, 32, 100])
        arr = np.random.RandomState(trial).randint(0, 256, (size, long, 3) if trial % 2 else (long, size, 3),
                                                   dtype=np.uint8)
        h, w = arr.shape[:2]
        if trial % 2:  # horizontal only: full height, a fractional span of the width
            box = (rng.uniform(0, w / 3), 0, rng.uniform(2 * w / 3, w), h)
        else:
            box = (0, rng.uniform(0, h / 3), w, rng.uniform(2 * h / 3, h))
        # a square output of side `size` needs the untouched axis to have `size` pixels already
        assert np.array_equal(_ours(arr, box, size), _pil(arr, box, (size, size))), (trial, box)


def test_random_resized_crops_are_pillows_bit_for_bit():
    """Both pass orders occur (tall and wide images), with fractional and whole-pixel boxes."""
    rng = random.Random(0)
    for trial in range(120):
        w, h = rng.randint(40, 400), rng.randint(40, 400)
        arr = np.random.RandomState(trial).randint(0, 256, (h, w, 3), dtype=np.uint8)
        box = random_resized_box(w, h, (0.08, 1.0), rng) if trial % 2 else \
            (rng.uniform(0, w / 3), rng.uniform(0, h / 3), rng.uniform(2 * w / 3, w), rng.uniform(2 * h / 3, h))
        size = rng.choice([16, 32, 224])
        assert np.array_equal(_ours(arr, box, size), _pil(arr, box, (size, size))), (trial, w, h, box, size)


def _first_batches(shards, spec: StreamSpec, encoded: bool, count: int = 2):
    stream, _ = train_loader(ShardFolder.read(shards), "train", spec, batch_size=4, seed=3, epoch=1, workers=0,
                             encoded=encoded)
    batches = []
    for batch in stream.start(1):
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


@pytest.mark.parametrize("kind", ["image", "video"])
def test_an_encoded_stream_decoded_on_the_cpu_equals_the_workers_stream(image_shards, video_shards, kind):
    shards = image_shards if kind == "image" else video_shards
    spec = StreamSpec(img_size=24, num_frames=4 if kind == "video" else 1, mean=(0.5, 0.4, 0.3),
                      std=(0.2, 0.25, 0.3), crop_scale=(0.3, 1.0))
    for plain, encoded in zip(_first_batches(shards, spec, False), _first_batches(shards, spec, True)):
        assert encoded.inputs is None and encoded.encoded is not None and encoded.keys == plain.keys
        assert torch.equal(encoded.labels, plain.labels)
        decoded = decode_batch(encoded.encoded, "cpu")
        assert decoded.shape == plain.inputs.shape and decoded.dtype == torch.float32
        assert torch.equal(decoded, plain.inputs)  # same decoder (libjpeg-turbo / zlib) on the CPU
        assert torch.equal(encoded.to("cpu").inputs, plain.inputs)  # what a training step calls


def test_data_decode_cuda_without_a_gpu_is_one_line(image_shards, tmp_path):
    from typer.testing import CliRunner

    from adaptcli.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU (the refusal is for machines without one)")
    result = CliRunner().invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--set",
                                      "model.img_size=32", "--set", "data.decode=cuda", "--set",
                                      "train.feature_cache=false", "--data", str(image_shards), "--out",
                                      str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "data.decode=cuda decodes batches on a CUDA GPU, but this run trains on cpu" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


def test_repeated_aug_copies_decode_on_the_device_as_in_the_workers(video_shards):
    spec = StreamSpec(img_size=24, num_frames=4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), crop_scale=(0.3, 1.0),
                      repeated_aug=2)
    for plain, encoded in zip(_first_batches(video_shards, spec, False), _first_batches(video_shards, spec, True)):
        assert encoded.keys == plain.keys and plain.keys[0::2] == plain.keys[1::2] and len(plain.keys) == 8
        assert torch.equal(encoded.to("cpu").inputs, plain.inputs)
