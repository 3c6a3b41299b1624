"""The demo's synthetic data: motion classes that only the ORDER of the frames tells apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptcli.demo.datasets import (
    MOTIONS,
    PAIRS,
    SHAPES,
    Sizes,
    motion_clip,
    shape_image,
    video_clips,
    write_datasets,
)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_the_two_classes_of_a_pair_are_time_reversals(pair):
    first, second = PAIRS[pair]
    for seed in range(3):
        a, b = motion_clip(first, seed), motion_clip(second, seed)
        assert a.shape == (8, 32, 32, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a[::-1], b)
        # the same set of frames: no single frame (nor the bag of frames) tells the classes apart
        assert sorted(f.tobytes() for f in a) == sorted(f.tobytes() for f in b)
        # ... but the clip does change over time
        assert np.abs(a[0].astype(int) - a[-1].astype(int)).max() > 100


def test_motions_move_the_way_their_names_say():
    def centre(frame):
        bright = np.argwhere(frame.max(axis=2) > 110)  # objects are bright, backgrounds dim
        return bright.mean(axis=0), len(bright)

    (y0, x0), _ = centre(motion_clip("right", 1)[0])
    (y1, x1), _ = centre(motion_clip("right", 1)[-1])
    assert x1 - x0 > 8 and abs(y1 - y0) < 3
    (y0, _), _ = centre(motion_clip("down", 1)[0])
    (y1, _), _ = centre(motion_clip("down", 1)[-1])
    assert y1 - y0 > 8
    _, small = centre(motion_clip("approaching", 2)[0])
    _, big = centre(motion_clip("approaching", 2)[-1])
    assert big > 4 * small


def test_clip_list_pairs_every_clip_with_its_reversal():
    sizes = Sizes(images={"train": 1}, clips={"train": 2, "validation": 1}, frames=8)
    clips, splits = video_clips(sizes, seed=0)
    assert len(clips) == len(MOTIONS) * 3 and sorted(splits) == ["train", "validation"]
    assert len(splits["train"]) == len(MOTIONS) * 2
    frames = {clip_id: f for clip_id, _, _, f in clips}
    ids = [c[0] for c in clips]
    for i in range(0, len(clips), 2):  # written as (forward, reversed) neighbours
        np.testing.assert_array_equal(frames[ids[i]][::-1], frames[ids[i + 1]])
    assert len(set(ids)) == len(ids)


def test_images_are_deterministic_and_differ_by_class():
    a = shape_image("ell", 5)
    np.testing.assert_array_equal(a, shape_image("ell", 5))
    assert a.shape == (32, 32, 3)
    assert not np.array_equal(a, shape_image("tee", 5))
    assert len(SHAPES) == 8


def test_written_layouts(tmp_path):
    sizes = Sizes(images={"train": 2, "test": 1}, clips={"train": 1, "validation": 1, "test": 1}, frames=8)
    images, ssv2 = write_datasets(tmp_path, sizes)
    assert len(list((images / "train").rglob("*.png"))) == 2 * len(SHAPES)
    assert len(list((ssv2 / "20bn-something-something-v2").glob("*.webm"))) == 3 * len(MOTIONS)
    labels = json.loads((ssv2 / "labels" / "labels.json").read_text())
    assert len(labels) == len(MOTIONS)
    record = json.loads((ssv2 / "labels" / "test.json").read_text())[0]
    assert "[something]" in record["template"] and record["placeholders"]
