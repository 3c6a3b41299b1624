"""RandAugment on a clip (``data.rand_augment``, e.g. VideoMAE's ``rand-m7-n4-mstd0.5-inc1``): timm's
``rand_augment_transform``, with the same ops and magnitudes on every frame of a clip.

timm draws its choices from Python's and numpy's global generators; each clip seeds both from the
sample's own generator and re-seeds them identically before every frame (then restores them), so
the frames of a clip see one draw and the stream stays a pure function of its seed. It runs on the
rendered crop (``img_size`` pixels), after the crop and flip: VideoMAE augments before its crop.
"""

from __future__ import annotations

import random

import numpy as np


def check_rand_augment(config: str) -> str:
    """A timm RandAugment string (``rand-m9-n2-mstd0.5``): refused in one line when timm cannot read it."""
    from timm.data.auto_augment import rand_augment_transform

    from adaptcli.errors import ConfigError

    try:
        rand_augment_transform(config, {})
    except Exception as exc:  # timm asserts or raises on what it cannot parse
        raise ConfigError(f"data.rand_augment={config!r} is not a timm RandAugment string ({exc or type(exc).__name__}); "
                          "use e.g. rand-m7-n4-mstd0.5-inc1") from None
    return config


class ClipRandAugment:
    """``__call__(frames uint8 [T x] H x W x 3, rng) -> same shape``: one RandAugment draw per clip."""

    def __init__(self, config: str, mean: tuple[float, float, float]):
        from timm.data.auto_augment import rand_augment_transform

        fill = tuple(int(round(255 * m)) for m in mean)  # timm's hparams: fill what rotations uncover
        self.transform = rand_augment_transform(config, {"translate_const": 100, "img_mean": fill})

    def __call__(self, frames: np.ndarray, rng: random.Random) -> np.ndarray:
        from PIL import Image

        seed = rng.getrandbits(32)
        saved = random.getstate(), np.random.get_state()
        try:
            out = []
            for frame in frames.reshape((-1,) + frames.shape[-3:]):
                random.seed(seed)
                np.random.seed(seed)
                out.append(np.asarray(self.transform(Image.fromarray(frame))))
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
        return np.stack(out).reshape(frames.shape)
