"""Temporal samplers and spatial boxes: pure functions with checkable properties."""

import random

import numpy as np
import pytest

from adaptcli.data.stream.sampling import clip_indices, segment_indices, stride_indices
from adaptcli.data.stream.transforms import eval_boxes, random_resized_box, render, square_box, train_box


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 16, 31, 72])
@pytest.mark.parametrize("t", [1, 4, 8, 16])
def test_segment_indices_properties(n, t):
    rng = random.Random(n * 100 + t)
    for train in (True, False):
        for _ in range(20 if train else 1):
            idx = segment_indices(n, t, train, rng)
            assert len(idx) == t and all(0 <= i < n for i in idx) and idx == sorted(idx)
            if n >= t:
                length = n / t
                for k, i in enumerate(idx):  # one frame from each segment
                    assert int(round(length * k)) <= i < max(int(round(length * k)) + 1, int(round(length * (k + 1))))
                assert len(set(idx)) == t
            else:  # short clip: every frame, then the last one repeated
                assert idx == list(range(n)) + [n - 1] * (t - n)


def test_segment_eval_is_middle_and_deterministic():
    assert segment_indices(16, 4, False) == [2, 6, 10, 14]
    assert segment_indices(16, 4, False) == segment_indices(16, 4, False)
    clips = [segment_indices(16, 4, False, clip_index=c, num_clips=2) for c in range(2)]
    assert clips == [[1, 5, 9, 13], [3, 7, 11, 15]]


def test_segment_train_covers_each_segment():
    rng = random.Random(0)
    seen = {i for _ in range(200) for i in segment_indices(16, 4, True, rng)}
    assert seen == set(range(16))


@pytest.mark.parametrize("n", [1, 5, 29, 30, 64])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_stride_indices_properties(n, stride):
    t, rng = 8, random.Random(n + stride)
    span = (t - 1) * stride + 1
    starts = set()
    for _ in range(50):
        idx = stride_indices(n, t, stride, True, rng)
        assert len(idx) == t and all(0 <= i < n for i in idx)
        if n >= span:
            assert all(b - a == stride for a, b in zip(idx, idx[1:]))
            starts.add(idx[0])
        else:  # too short: from frame 0, the last frame repeated
            assert idx[0] == 0 and idx[-1] == n - 1
            assert idx == [min(i * stride, n - 1) for i in range(t)]
    if n >= span:
        assert starts <= set(range(n - span + 1))
        assert len(starts) == min(n - span + 1, len(starts)) and (n - span == 0 or len(starts) > 1)


def test_stride_eval_clips_spread_evenly():
    clips = [stride_indices(64, 8, 4, False, clip_index=c, num_clips=3) for c in range(3)]
    assert [c[0] for c in clips] == [0, 18, 35] and clips[-1][-1] == 63
    assert stride_indices(64, 8, 4, False) == list(range(17, 64, 4))[:8]
    assert clip_indices("stride", 64, 8, False, stride=4) == stride_indices(64, 8, 4, False)
    with pytest.raises(ValueError):
        clip_indices("bogus", 10, 2, False)  # type: ignore[arg-type]


def test_random_resized_box_inside_and_in_scale():
    rng = random.Random(1)
    for _ in range(200):
        x0, y0, x1, y1 = random_resized_box(341, 256, (0.08, 1.0), rng)
        assert 0 <= x0 < x1 <= 341 and 0 <= y0 < y1 <= 256
        area = (x1 - x0) * (y1 - y0) / (341 * 256)
        assert 0.07 <= area <= 1.0
        assert 3 / 4 * 0.95 <= (x1 - x0) / (y1 - y0) <= 4 / 3 * 1.05 or area > 0.7


def test_eval_boxes():
    (box,) = eval_boxes("random_resized_crop", 320, 240, 1, 0.875)
    assert box == pytest.approx((55, 15, 265, 225))  # centre, 0.875 of the short side
    assert eval_boxes("resize", 320, 240, 1, 0.875) == [(0, 0, 320, 240)]
    left, mid, right = eval_boxes("resize_crop", 320, 240, 3, 0.875)
    assert left == (0, 0, 240, 240) and mid == (40, 0, 280, 240) and right == (80, 0, 320, 240)
    top, _, bottom = eval_boxes("resize_crop", 240, 320, 3, 0.875)
    assert top == (0, 0, 240, 240) and bottom == (0, 80, 240, 320)
    rng = random.Random(0)
    x0, y0, x1, y1 = train_box("resize_crop", 320, 240, 224, (0.08, 1), 0.875, rng)
    assert x1 - x0 == pytest.approx(210) and 0 <= x0 and x1 <= 320
    assert square_box(100, 50, 50, position=1.0) == (50, 0, 100, 50)


def test_render_crops_resizes_and_flips():
    from PIL import Image

    array = np.zeros((40, 60, 3), np.uint8)
    array[:, :30] = 255  # left half white
    image = Image.fromarray(array)
    out = render(image, (0, 0, 60, 40), 20)
    assert out.shape == (20, 20, 3) and out[10, 2].min() == 255 and out[10, 17].max() == 0
    flipped = render(image, (0, 0, 60, 40), 20, flip=True)
    assert flipped[10, 2].max() == 0 and flipped[10, 17].min() == 255
