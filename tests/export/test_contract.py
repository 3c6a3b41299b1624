"""The contract between artefacts (issue 32, item 1): ``predict``, ``eval`` and ``export`` check a run's
backbone file (present, the SHA-256 run.json records) before any work, and ``--backbone FILE`` points a run
to its moved file with the run's own numbers; data whose classes, task or modality differ from the model's is
refused (other class names only with ``--classes-by-index``); eval on other data never writes the run's
eval.json, and a hub card never publishes a score under a dataset it did not come from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from adaptcli.data.synthetic import write_image, write_image_folder
from adaptcli.io import read_safetensors, save_tensors
from tests.engine.conftest import COLOURS, colour_images, prepare
from tests.export.conftest import finetune, invoke

MODES = ("--merge", "--full", "--adapter-only")


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under ``folders`` with its bytes: what the user owns, to compare before and after."""
    return {str(p): p.read_bytes() for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def refused(result, *parts: str) -> str:
    """Exit 2 with one line on stderr holding every part; the line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert all(part in lines[0] for part in parts), (parts, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


def metrics(result) -> dict:
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout[result.stdout.index("{"):])
    return {k: found[k] for k in ("top1", "top5", "mean_class_acc", "per_class", "samples", "split")}


def predictions(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if not line.startswith("predicted ")]


def consumers(run: Path, images: Path, out: Path) -> dict[str, list]:
    """Every command that rebuilds the run's model, writing (where it writes) under ``out``."""
    commands = {"eval": ["eval", "--run", run, "--json"],
                "predict": ["predict", run, images, "--no-progress"]}
    for mode in MODES:
        commands[f"export {mode}"] = ["export", "--run", run, mode, "--out", out / f"{mode[2:]}.safetensors"]
    return commands


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "raw"
    for i, (name, rgb) in enumerate(COLOURS.items()):
        write_image(folder / f"{name}.png", colour_images(1, rgb, seed=300 + i)[0])
    return folder


def copied(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def test_a_run_without_its_backbone_file_exits_2_and_with_backbone_gives_the_runs_numbers(runs, tmp_path, images):
    original = runs.get("arc")
    run = copied(original, tmp_path / "copy")
    moved = tmp_path / "elsewhere" / "vit.safetensors"
    moved.parent.mkdir()
    (run / "backbone.safetensors").rename(moved)
    exports = tmp_path / "exports"
    exports.mkdir()
    before = snapshot(run, moved.parent, images)
    for name, args in consumers(run, images, exports).items():
        line = refused(invoke(*args), f"the backbone file {run / 'backbone.safetensors'}", "is missing",
                       "pass --backbone FILE")
        assert line.startswith("error: "), name
    assert snapshot(run, moved.parent, images) == before and not any(exports.iterdir())

    # --backbone FILE: the run's own numbers, for every consumer.
    assert metrics(invoke("eval", "--run", run, "--backbone", moved, "--json")) == \
        metrics(invoke("eval", "--run", original, "--json"))
    assert predictions(invoke("predict", run, images, "--backbone", moved, "--no-progress")) == \
        predictions(invoke("predict", original, images, "--no-progress"))
    for mode in MODES:
        name = mode[2:]
        theirs, ours = exports / f"orig-{name}.safetensors", exports / f"{name}.safetensors"
        assert invoke("export", "--run", original, mode, "--out", theirs).exit_code == 0
        done = invoke("export", "--run", run, mode, "--backbone", moved, "--out", ours)
        assert done.exit_code == 0, done.output
        a, b = read_safetensors(theirs)[0], read_safetensors(ours)[0]
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), mode
        if mode == "--adapter-only":  # the round-trip check ran on the moved file
            assert "adapter round-trip check: max |difference|" in done.stdout


def test_a_changed_backbone_file_is_refused_and_so_is_another_file_given_with_backbone(runs, tmp_path, images):
    run = copied(runs.get("arc"), tmp_path / "copy")
    kept = run / "backbone.safetensors"
    original = tmp_path / "original.safetensors"
    shutil.copy2(kept, original)
    tensors, meta = read_safetensors(kept)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1.0  # same size, same names: only the hash tells
    save_tensors(kept, tensors, meta)
    exports = tmp_path / "exports"
    exports.mkdir()
    before = snapshot(run, images)
    for args in consumers(run, images, exports).values():
        refused(invoke(*args), f"the backbone file {kept}", "changed since the run was trained",
                "pass --backbone FILE with the original")
    for args in consumers(run, images, exports).values():
        line = refused(invoke(*args, "--backbone", kept), f"--backbone {kept} is not the backbone the run")
        assert "SHA-256 differs" in line
    assert snapshot(run, images) == before and not any(exports.iterdir())
    assert invoke("eval", "--run", run, "--backbone", original, "--json").exit_code == 0


def test_a_run_trained_from_a_checkpoint_file_names_it_when_it_moved(runs, image_shards, tmp_path, images):
    checkpoint = tmp_path / "weights" / "vit.safetensors"
    checkpoint.parent.mkdir()
    shutil.copy2(runs.get("arc") / "backbone.safetensors", checkpoint)
    run = finetune(image_shards, tmp_path / "run", "linear", "--checkpoint", checkpoint)
    assert not (run / "backbone.safetensors").exists()
    expected = metrics(invoke("eval", "--run", run, "--json"))
    moved = tmp_path / "moved.safetensors"
    checkpoint.rename(moved)
    exports = tmp_path / "exports"
    exports.mkdir()
    before = snapshot(run)
    for args in consumers(run, images, exports).values():
        refused(invoke(*args), f"the backbone file {checkpoint} of the run", "pass --backbone FILE")
    assert snapshot(run) == before and not any(exports.iterdir())
    assert metrics(invoke("eval", "--run", run, "--backbone", moved, "--json")) == expected
    assert invoke("predict", run, images, "--backbone", moved, "--no-progress").exit_code == 0


def test_an_older_run_json_without_the_backbone_record_still_needs_its_file(runs, tmp_path):
    run = copied(runs.get("arc"), tmp_path / "copy")
    info = json.loads((run / "run.json").read_text())
    for key in ("backbone_file", "backbone_sha256"):
        info.pop(key)
    (run / "run.json").write_text(json.dumps(info))
    (run / "backbone.safetensors").rename(tmp_path / "vit.safetensors")
    refused(invoke("eval", "--run", run), "backbone.safetensors", "is missing", "--backbone FILE")
    assert invoke("eval", "--run", run, "--backbone", tmp_path / "vit.safetensors").exit_code == 0


@pytest.fixture(scope="module")
def renamed_shards(tmp_path_factory) -> Path:
    """Another dataset in the layout users have (image folders): as many classes as the runs', other names."""
    root = tmp_path_factory.mktemp("renamed")
    names = {"crimson": COLOURS["red"], "lime": COLOURS["green"], "navy": COLOURS["blue"]}
    splits = {split: {name: colour_images(4, rgb, seed=50 + i) for i, (name, rgb) in enumerate(names.items())}
              for split in ("train", "test")}
    write_image_folder(root / "src", splits)
    prepare(["imagefolder", str(root / "src"), "--shards", str(root / "shards"), "--samples-per-shard", "10"])
    return root / "shards"


def test_eval_on_data_whose_classes_differ_is_refused_unless_classes_by_index(runs, renamed_shards, tmp_path):
    run = runs.get("arc")
    assert invoke("eval", "--run", run).exit_code == 0  # the run's own eval.json
    before = snapshot(run, renamed_shards)
    line = refused(invoke("eval", "--run", run, "--data", renamed_shards),
                   f"{renamed_shards} names its classes differently from the run (class 0",
                   "--classes-by-index")
    assert "'crimson' there" in line and "'blue' in the model" in line
    assert snapshot(run, renamed_shards) == before

    scored = invoke("eval", "--run", run, "--data", renamed_shards, "--classes-by-index")
    assert scored.exit_code == 0 and "top-1" in scored.stdout and "written:" not in scored.stdout
    assert f"{run / 'eval.json'} is left as it was; pass --out FILE" in scored.stderr
    assert snapshot(run, renamed_shards) == before  # eval.json bytes unchanged, no new file

    out = tmp_path / "renamed-eval.json"
    scored = invoke("eval", "--run", run, "--data", renamed_shards, "--classes-by-index", "--out", out, "--json")
    assert scored.exit_code == 0 and f"written: {out}" not in scored.stdout  # --json: the object only
    written = json.loads(out.read_text())
    assert written["data"] == str(renamed_shards) and written["samples"] == 12
    assert snapshot(run, renamed_shards) == before
    refused(invoke("eval", "--run", run, "--out", run / "eval.json"), f"--out {run / 'eval.json'} would replace")


def test_eval_of_an_export_checks_the_class_names_too(runs, renamed_shards, tmp_path):
    merged = tmp_path / "m.safetensors"
    assert invoke("export", "--run", runs.get("arc"), "--merge", "--out", merged).exit_code == 0
    refused(invoke("eval", "--export", merged, "--data", renamed_shards), "names its classes differently",
            "--classes-by-index")
    assert invoke("eval", "--export", merged, "--data", renamed_shards, "--classes-by-index").exit_code == 0


def test_eval_on_data_of_another_modality_task_or_class_count_is_refused(runs, video_shards, two_colour_shards,
                                                                         image_shards, tmp_path):
    run = runs.get("arc")
    multi = tmp_path / "multi"
    shutil.copytree(image_shards, multi)
    manifest = json.loads((multi / "dataset.json").read_text())
    (multi / "dataset.json").write_text(json.dumps({**manifest, "task": "multi-label"}))
    before = snapshot(run)
    for data, parts in ((video_shards, ("holds videos but the run", "takes images")),
                        (two_colour_shards, ("has 2 classes but the run", "was trained on 3")),
                        (multi, ("is multi-label data but the run", "single-label data"))):
        for extra in ((), ("--classes-by-index",)):
            refused(invoke("eval", "--run", run, "--data", data, *extra), *parts)
    assert snapshot(run) == before


def test_eval_on_a_copy_of_the_runs_data_writes_its_eval_json(runs, image_shards, tmp_path):
    run = copied(runs.get("arc"), tmp_path / "run")
    data = tmp_path / "data"
    shutil.copytree(image_shards, data)
    done = invoke("eval", "--run", run, "--data", data)
    assert done.exit_code == 0 and f"written: {run / 'eval.json'}" in done.stdout
    assert json.loads((run / "eval.json").read_text())["data"] == str(data)
    before = snapshot(run)
    done = invoke("eval", "--run", run, "--split", "validation", "--out", tmp_path / "val.json")
    assert done.exit_code == 0 and f"written: {tmp_path / 'val.json'}" in done.stdout
    assert json.loads((tmp_path / "val.json").read_text())["split"] == "validation" and snapshot(run) == before


def _card_scores(folder: Path) -> list:
    block = yaml.safe_load((folder / "README.md").read_text()[4:].split("\n---\n", 1)[0])
    return block.get("model-index", [])


def test_a_hub_card_never_publishes_a_score_on_other_data(runs, renamed_shards, tmp_path):
    run = copied(runs.get("arc"), tmp_path / "run")
    (run / "eval.json").unlink(missing_ok=True)
    assert invoke("eval", "--run", run, "--data", renamed_shards, "--classes-by-index").exit_code == 0
    assert not (run / "eval.json").exists()
    assert invoke("export", "--run", run, "--merge", "--format", "hub", "--out", tmp_path / "hub1").exit_code == 0
    assert _card_scores(tmp_path / "hub1") == []

    # An eval.json an earlier adaptcli wrote for other data (no fingerprint, another data folder).
    assert invoke("eval", "--run", run).exit_code == 0
    own = json.loads((run / "eval.json").read_text())
    older = {k: v for k, v in own.items() if k != "data_fingerprint"}
    (run / "eval.json").write_text(json.dumps({**older, "data": str(renamed_shards)}))
    assert invoke("export", "--run", run, "--merge", "--format", "hub", "--out", tmp_path / "hub2").exit_code == 0
    assert _card_scores(tmp_path / "hub2") == []
    (run / "eval.json").write_text(json.dumps(older))  # an older eval.json of its own data folder: published
    assert invoke("export", "--run", run, "--merge", "--format", "hub", "--out", tmp_path / "hub3").exit_code == 0
    assert _card_scores(tmp_path / "hub3")[0]["results"][0]["metrics"][0]["value"] == own["top1"]


def test_each_artefact_names_what_its_consumers_check(runs, image_shards, tmp_path):
    """run.json: backbone file and hash, classes, task, modality; dataset.json: classes, task, splits; an
    export header: all of the run's."""
    import hashlib

    from adaptcli.data.manifest import read_manifest
    from adaptcli.deploy.header import ExportHeader

    run = runs.get("arc")
    info = json.loads((run / "run.json").read_text())
    assert info["backbone_file"] == "backbone.safetensors"
    assert info["backbone_sha256"] == hashlib.sha256((run / "backbone.safetensors").read_bytes()).hexdigest()
    manifest = read_manifest(image_shards)
    assert (info["classes"], info["task"], info["modality"]) == (manifest.classes, manifest.task, manifest.modality)
    assert set(manifest.splits) == {"train", "validation", "test"}
    for mode in MODES:
        out = tmp_path / f"{mode[2:]}.safetensors"
        assert invoke("export", "--run", run, mode, "--out", out).exit_code == 0
        header = ExportHeader.read(out)
        assert (header.classes, header.task, header.modality) == (info["classes"], info["task"], info["modality"])
        assert header.backbone_sha256 == info["backbone_sha256"] and header.data_fingerprint == info["data_fingerprint"]
