"""The stand-in writers produce real files that PyAV and the label readers accept."""

import json

import av
import numpy as np
import pytest

from adaptcli.data.synthetic import moving_square, write_ssv2_layout, write_webm
from adaptcli.data.prepare.video_decode import decode_to_arrays


def test_write_webm_is_vp9_and_decodes_back(tmp_path):
    frames = moving_square("right", 10, 48, 64, seed=3)
    path = write_webm(tmp_path / "a.webm", frames, fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert float(stream.average_rate) == 12
    decoded = decode_to_arrays(path)
    assert len(decoded) == 10 and decoded[0].shape == (48, 64, 3)
    # lossy, but close to the source
    assert np.abs(decoded[5].astype(int) - frames[5].astype(int)).mean() < 12


def test_moving_square_moves():
    frames = moving_square("right", 5, 32, 40, seed=0)
    bright = [np.argwhere(f.min(axis=2) >= 150)[:, 1].mean() for f in frames]
    assert bright == sorted(bright) and bright[-1] > bright[0]


def test_write_ssv2_layout_both_namings(tmp_path):
    clips = [("1", "Moving [something] left", ["x"], moving_square("left", 4, 32, 32)),
             ("2", "Pushing [something] from [something]", ["a", "b"], moving_square("up", 4, 32, 32))]
    a = write_ssv2_layout(tmp_path / "a", clips, {"train": ["1"], "test": ["2"]}, naming="labels")
    b = write_ssv2_layout(tmp_path / "b", clips, {"train": ["1", "2"]}, naming="prefixed")
    assert json.loads((a / "labels" / "labels.json").read_text()) == {
        "Moving something left": "0", "Pushing something from something": "1"}
    assert json.loads((a / "labels" / "test.json").read_text()) == [{"id": "2"}]
    train = json.loads((b / "something-something-v2-train.json").read_text())
    assert train[1] == {"id": "2", "label": "Pushing a from b", "template": "Pushing [something] from [something]",
                        "placeholders": ["a", "b"]}
    assert (b / "20bn-something-something-v2" / "2.webm").is_file()


def test_natural_clip_is_textured_moving_video_at_ssv2_statistics(tmp_path):
    from adaptcli.data.synthetic import natural_clip

    frames = natural_clip(12, 240, 427, seed=5)
    assert frames.shape == (12, 240, 427, 3) and frames.dtype == np.uint8
    path = write_webm(tmp_path / "n.webm", frames, fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, float(stream.average_rate)) == ("vp9", 12)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 12 and decoded[0].shape == (240, 427, 3)
    grey = np.stack(decoded).astype(np.float32).mean(axis=-1)
    # textured: not flat, and detail at small scales (neighbouring pixels differ), not only big regions
    assert min(float(g.std()) for g in grey) > 15
    assert float(np.abs(np.diff(grey, axis=2)).mean()) > 1.5
    # motion: consecutive frames differ by more than the codec's noise
    assert min(float(np.abs(a - b).mean()) for a, b in zip(grey, grey[1:])) > 2
    # and it does not compress like flat shapes: at least 1 kB per frame
    assert path.stat().st_size / 12 > 1000


def test_natural_clip_is_deterministic_per_seed():
    from adaptcli.data.synthetic import natural_clip

    a, b, c = natural_clip(3, 32, 48, seed=1), natural_clip(3, 32, 48, seed=1), natural_clip(3, 32, 48, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(("height", "width"), [(64, 256), (256, 64)])
def test_fractal_noise_has_square_cells_in_any_orientation(height, width):
    from adaptcli.data.synthetic import fractal_noise

    noise = fractal_noise(height, width, np.random.default_rng(0))
    assert noise.shape == (height, width) and 0 <= noise.min() and noise.max() <= 1
    dy, dx = np.abs(np.diff(noise, axis=0)).mean(), np.abs(np.diff(noise, axis=1)).mean()
    assert 0.6 < dy / dx < 1.6  # a stretched grid would make one direction several times smoother
