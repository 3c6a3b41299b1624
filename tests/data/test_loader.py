"""Train and eval streams from shard folders: shapes, determinism, exactly-once evaluation."""

import json

import pytest
from tests.data import standins
import torch

from adaptcli.config import DataConfig
from adaptcli.data.stream.evaluation import eval_loader
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.train import steps_per_epoch, train_loader

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def spec(**kw) -> StreamSpec:
    base = dict(img_size=32, num_frames=4, mean=MEAN, std=STD, shuffle_buffer=20)
    base.update(kw)
    return StreamSpec(**base)


def test_from_config():
    data = DataConfig(sampling="stride", stride=2, augment="resize", crop_scale=[0.5, 1.0], flip=False,
                      crop_pct=0.9, shuffle_buffer=64)
    s = StreamSpec.from_config(data, 224, 16, MEAN, STD)
    assert (s.img_size, s.num_frames, s.sampling, s.stride, s.augment) == (224, 16, "stride", 2, "resize")
    assert s.crop_scale == (0.5, 1.0) and s.flip is False and s.crop_pct == 0.9 and s.shuffle_buffer == 64
    assert s.mean == MEAN and s.std == STD


def test_video_train_batches(ssv2_shards):
    loader, steps = train_loader(ShardFolder.read(ssv2_shards), "train", spec(), 4, workers=2, seed=3)
    assert steps == 22 // 4 == len(loader)
    batches = list(loader)
    assert len(batches) == steps
    for batch in batches:
        assert batch.inputs.shape == (4, 3, 4, 32, 32) and batch.inputs.dtype == torch.float32
        assert batch.labels.dtype == torch.long and batch.labels.shape == (4,)
        assert len(batch.keys) == 4 and all(0 <= int(l) < 4 for l in batch.labels)
    # normalised: roughly zero-centred, clearly not 0..255
    assert -3 < float(batches[0].inputs.mean()) < 3
    manifest = json.loads((ssv2_shards / "dataset.json").read_text())
    assert manifest["dataset"] == "ssv2" and loader.decoder.flip is False  # left/right is the label


def test_train_stream_is_deterministic(ssv2_shards):
    def run(epoch, workers=2, rank=0):
        loader, _ = train_loader(ShardFolder.read(ssv2_shards), "train", spec(sampling="stride", stride=2), 2,
                                 rank=rank, world_size=2, workers=workers, seed=7, epoch=epoch)
        return list(loader)

    a, b = run(1), run(1)
    assert len(a) == len(b) == 22 // 4
    for x, y in zip(a, b):
        assert x.keys == y.keys and torch.equal(x.inputs, y.inputs)
    other_epoch = run(2)
    assert any(x.keys != y.keys or not torch.equal(x.inputs, y.inputs) for x, y in zip(a, other_epoch))
    other_rank = run(1, rank=1)
    assert len(other_rank) == len(a)
    assert any(x.keys != y.keys for x, y in zip(a, other_rank))
    # iterating the same loader again moves on to the next epoch
    loader, _ = train_loader(ShardFolder.read(ssv2_shards), "train", spec(sampling="stride", stride=2), 2, rank=0,
                             world_size=2, workers=2, seed=7, epoch=1)
    list(loader)
    again = list(loader)
    assert [x.keys for x in again] == [x.keys for x in other_epoch]


def test_video_eval_views_and_unlabelled(ssv2_shards):
    batches = list(eval_loader(ShardFolder.read(ssv2_shards), "validation", spec(), 2, views=(2, 3)))
    assert [b.inputs.shape[0] for b in batches] == [2, 2, 1]
    assert batches[0].inputs.shape == (2, 6, 3, 4, 32, 32)
    first = batches[0].inputs[0]
    assert not torch.equal(first[0], first[1])  # left and centre crops differ
    single = list(eval_loader(ShardFolder.read(ssv2_shards), "validation", spec(), 8))
    assert single[0].inputs.shape == (5, 1, 3, 4, 32, 32)
    # the centre crop of clip 0 equals no view of the 2x3 grid unless identical sampling; eval is repeatable
    again = list(eval_loader(ShardFolder.read(ssv2_shards), "validation", spec(), 8))
    assert torch.equal(single[0].inputs, again[0].inputs)
    test = list(eval_loader(ShardFolder.read(ssv2_shards), "test", spec(), 8))
    assert test[0].labels.tolist() == [-1] * 4


def test_image_batches(image_shards):
    loader, steps = train_loader(ShardFolder.read(image_shards), "train", spec(img_size=24, augment="resize_crop"), 4,
                                 workers=0)
    batch = next(iter(loader))
    assert steps == 15 // 4 and batch.inputs.shape == (4, 3, 24, 24)
    evals = list(eval_loader(ShardFolder.read(image_shards), "validation", spec(img_size=24, augment="resize"), 4,
                             views=(2, 3)))
    assert evals[0].inputs.shape == (4, 3, 24, 24) and sum(len(b.keys) for b in evals) == 15
    assert train_loader(ShardFolder.read(image_shards), "train", spec(), 4, world_size=8)[1] == 1


def _eval_keys(shards, split, world_size, workers, s):
    keys = []
    per_rank = []
    for rank in range(world_size):
        loader = eval_loader(ShardFolder.read(shards), split, s, 3, rank=rank, world_size=world_size, workers=workers)
        got = [k for b in loader for k in b.keys]
        per_rank.append(got)
        keys += got
    return keys, per_rank


@pytest.mark.parametrize("samples_per_shard,shards", [(3, 5), (100, 1)])
def test_eval_exactly_once_two_ranks_two_workers(tmp_path, run_cli, samples_per_shard, shards):
    src = standins.build_imagefolder(tmp_path / "imgs", per_class={"a": 6, "b": 5, "c": 4}, corrupt=False)
    out = tmp_path / "out"
    result = run_cli("prepare", "imagefolder", src, "--shards", out, "--samples-per-shard",
                     str(samples_per_shard), "--splits", "train", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "dataset.json").read_text())
    assert len(manifest["splits"]["train"]["shards"]) == shards
    expected = sorted(f"{c}/img_{i}_v2" for c, n in {"a": 6, "b": 5, "c": 4}.items() for i in range(n))
    keys, per_rank = _eval_keys(out, "train", 2, 2, spec())
    assert sorted(keys) == expected and len(keys) == len(set(keys)) == 15
    assert all(per_rank)  # no rank left empty here
    assert _eval_keys(out, "train", 2, 2, spec())[1] == per_rank  # deterministic order
    keys1, _ = _eval_keys(out, "train", 1, 0, spec())
    assert sorted(keys1) == expected


def test_video_eval_exactly_once(ssv2_shards):
    manifest = json.loads((ssv2_shards / "dataset.json").read_text())
    for split in ("train", "validation"):
        keys, _ = _eval_keys(ssv2_shards, split, 2, 2, spec(num_frames=2, img_size=16))
        assert len(keys) == len(set(keys)) == manifest["splits"][split]["samples"]


def test_missing_split_is_one_line_error(image_shards):
    from adaptcli.errors import AdaptError

    with pytest.raises(AdaptError, match="split 'holdout' is not in this shard folder"):
        eval_loader(ShardFolder.read(image_shards), "holdout", spec(), 4)


def test_flip_comes_from_the_manifest(ssv2_shards, image_shards, monkeypatch):
    """SSv2 shards record ``hflip: false`` (left/right is the label) and its train stream never flips."""
    import adaptcli.data.stream.samples as samples_module

    assert json.loads((ssv2_shards / "dataset.json").read_text())["hflip"] is False
    assert json.loads((image_shards / "dataset.json").read_text())["hflip"] is True
    flips: list[bool] = []
    real = samples_module.render

    def recording_render(image, box, size, flip=False):
        flips.append(flip)
        return real(image, box, size, flip)

    monkeypatch.setattr(samples_module, "render", recording_render)
    for _ in range(2):
        list(train_loader(ShardFolder.read(ssv2_shards), "train", spec(flip=True), 4, workers=0, seed=5)[0])
    assert flips and not any(flips)
    flips.clear()
    list(train_loader(ShardFolder.read(image_shards), "train", spec(img_size=24, flip=True), 4, workers=0, seed=5)[0])
    assert any(flips) and not all(flips)


def test_manifest_without_hflip_field(ssv2_shards, tmp_path):
    """Manifests written before the field existed: SSv2 is still never flipped, others may be."""
    from adaptcli.data.manifest import manifest_from_dict

    data = json.loads((ssv2_shards / "dataset.json").read_text())
    del data["hflip"]
    assert manifest_from_dict(data).hflip is False
    assert manifest_from_dict({**data, "dataset": "imagefolder"}).hflip is True


@pytest.mark.parametrize("samples,batch,world,max_steps,expected", [
    (22, 4, 1, None, 5), (22, 4, 2, None, 2), (3, 4, 8, None, 1), (100, 4, 1, 7, 7), (100, 4, 1, 50, 25),
])
def test_steps_per_epoch(samples, batch, world, max_steps, expected):
    assert steps_per_epoch(samples, batch, world, max_steps) == expected


def test_train_loader_max_steps(image_shards):
    loader, steps = train_loader(ShardFolder.read(image_shards), "train", spec(img_size=24), 4, workers=0, max_steps=2)
    assert steps == len(loader) == len(list(loader)) == 2


@pytest.mark.parametrize("steps", [5, 6, 1])
def test_workers_stop_at_their_share_with_the_same_batches(ssv2_shards, monkeypatch, steps):
    """Each worker decodes only its share of the epoch; the batches are those of the uncut stream."""
    import adaptcli.data.stream.train as train_module

    def run():
        loader, _ = train_loader(ShardFolder.read(ssv2_shards), "train", spec(), 2, workers=2, seed=11)
        loader.steps = steps
        return list(loader)

    cut = run()
    monkeypatch.setattr(train_module._WorkerShare, "__call__", lambda self, src: src)  # the stream before
    uncut = run()
    assert len(cut) == len(uncut) == steps
    for a, b in zip(cut, uncut):
        assert a.keys == b.keys and torch.equal(a.inputs, b.inputs)


def test_worker_share_never_pulls_a_batch_past_it():
    from adaptcli.data.stream.train import _WorkerShare

    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield {"i": i}

    assert [b["i"] for b in _WorkerShare(3)(source())] == [0, 1, 2] and pulled == [0, 1, 2]


def test_repeated_aug_puts_copies_of_each_video_side_by_side(ssv2_shards):
    """VideoMAE's --num_sample 2 (ssv2.py __getitem__: the decoded frames augmented twice; utils.py
    multiple_samples_collate flattens the copies into the batch): 4 videos give 8 clips per step and the
    epoch's steps still count videos."""
    def batches(**kw):
        loader, steps = train_loader(ShardFolder.read(ssv2_shards), "train", spec(repeated_aug=2, **kw), 4,
                                     workers=0, seed=3)
        assert steps == 22 // 4
        return list(loader)

    for batch in batches():
        assert batch.inputs.shape == (8, 3, 4, 32, 32) and len(batch.keys) == 8
        assert batch.keys[0::2] == batch.keys[1::2] and torch.equal(batch.labels[0::2], batch.labels[1::2])
        assert not torch.equal(batch.inputs[0::2], batch.inputs[1::2])  # each copy its own crop
    for batch in batches(augment="resize"):  # no random crop (and no flip on SSv2): the copies are equal
        assert torch.equal(batch.inputs[0::2], batch.inputs[1::2])  # the same frames: one temporal draw


def test_repeated_aug_comes_from_the_config():
    s = StreamSpec.from_config(DataConfig(repeated_aug=2), 32, 4, MEAN, STD)
    assert s.repeated_aug == 2 and StreamSpec.from_config(DataConfig(), 32, 4, MEAN, STD).repeated_aug == 1
