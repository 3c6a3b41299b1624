"""The stand-in writers produce real files that PyAV and the label readers accept."""

import json

import av
import numpy as np

from adaptcli.data.synthetic import moving_square, write_ssv2_layout, write_webm
from adaptcli.data.video_decode import decode_to_arrays


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
