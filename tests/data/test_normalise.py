"""``normalise`` (table lookup) gives exactly the float32 result of (v - 255 mean) / (255 std)."""

import numpy as np
import pytest
import torch

from adaptcli.data.stream.transforms import normalise

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def direct(frames: np.ndarray, video: bool) -> np.ndarray:
    """The formula computed pixel by pixel, channels moved forward."""
    lead = frames.ndim - (4 if video else 3)
    x = frames.astype(np.float32) - np.asarray(MEAN, np.float32) * 255
    x *= 1 / (np.asarray(STD, np.float32) * 255)
    return np.moveaxis(x, -1, lead)


@pytest.mark.parametrize(("shape", "video"), [((2, 3, 9, 11, 3), True), ((4, 2, 3, 9, 11, 3), True),
                                               ((2, 13, 11, 3), False), ((16, 17, 3), False)])
def test_normalise_is_exactly_the_formula(shape, video):
    frames = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    frames.reshape(-1, 3)[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every value in every channel
    out = normalise(frames, MEAN, STD, video)
    assert out.dtype == torch.float32 and out.is_contiguous()
    np.testing.assert_array_equal(out.numpy(), direct(frames, video))


def test_normalise_in_shared_memory():
    frames = np.full((1, 2, 4, 4, 3), 255, dtype=np.uint8)
    out = normalise(frames, MEAN, STD, True, shared=True)
    assert out.is_shared() and out.shape == (1, 3, 2, 4, 4)
    assert float(out[0, 0, 0, 0, 0]) == pytest.approx((1 - MEAN[0]) / STD[0], rel=1e-6)


def test_a_worker_batch_in_shared_memory_reaches_the_main_process_unchanged():
    import torch.utils.data

    from adaptcli.data.stream.batch import Collate

    rng = np.random.default_rng(1)
    items = [(rng.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8), i, str(i)) for i in range(4)]
    collate = Collate(MEAN, STD, video=True)
    expected = collate(items).inputs
    loader = torch.utils.data.DataLoader(items, batch_size=4, num_workers=1, collate_fn=collate)
    (batch,) = list(loader)
    assert batch.inputs.shape == (4, 3, 2, 8, 8) and batch.inputs.is_contiguous()
    assert torch.equal(batch.inputs, expected)


def test_shared_memory_without_torch_private_allocator(monkeypatch):
    frames = np.random.default_rng(2).integers(0, 256, size=(1, 2, 4, 4, 3), dtype=np.uint8)
    expected = normalise(frames, MEAN, STD, True, shared=True)
    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", None, raising=False)
    out = normalise(frames, MEAN, STD, True, shared=True)
    assert out.is_shared() and torch.equal(out, expected)
