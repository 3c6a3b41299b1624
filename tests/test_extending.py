"""docs/extending.md's examples, run as written: a toy method, dataset layout and export format.

Each code block of the page that starts with a ``# adaptcli/...`` path comment is written, as it
stands, into a folder that the path's package scans (appended to that package's ``__path__`` in a
fresh process, so nothing leaks into the registries of this one). The CLI then prepares a dataset
in the new layout, fine-tunes the new method on it and exports the run in the new format.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaptcli.data.synthetic import write_image_folder
from tests.engine.conftest import COLOURS, TINY, colour_images

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2"]

#: Runs the CLI after adding each ``<ext>/<package>`` folder to that package's search path.
LAUNCHER = """\
import importlib, sys
from pathlib import Path

extensions = Path(sys.argv.pop(1))
for folder in sorted(extensions.iterdir()):
    importlib.import_module(folder.name).__path__.append(str(folder))
from adaptcli.cli import main

sys.argv[0] = "adaptcli"
main()
"""


def documented_files() -> dict[str, str]:
    """``adaptcli/...`` path -> code, for every Python block of the page that names its file."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    files = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# adaptcli/"):
            files[first[2:].strip()] = block
    return files


def write_extensions(root: Path) -> Path:
    """The documented files under ``root/<package>/``, with the empty ``__init__.py`` of a method folder."""
    for path, code in documented_files().items():
        parts = Path(path).parts
        # the package whose folder is scanned: adaptcli/methods, adaptcli/data/prepare/sources, adaptcli/deploy/formats
        depth = {"methods": 2, "data": 4}.get(parts[1], 3)
        target = root / ".".join(parts[:depth]) / Path(*parts[depth:])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
        if parts[1] == "methods":
            (target.parent / "__init__.py").touch()
    return root


@pytest.fixture(scope="module")
def adaptcli_with_extensions(tmp_path_factory):
    root = tmp_path_factory.mktemp("extending")
    extensions = write_extensions(root / "extensions")
    launcher = root / "launcher.py"
    launcher.write_text(LAUNCHER)

    def run(*args: object) -> subprocess.CompletedProcess:
        command = [sys.executable, str(launcher), str(extensions), *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)

    return run


def test_the_page_documents_one_method_one_layout_one_format():
    assert sorted(documented_files()) == ["adaptcli/data/prepare/sources/csvsplits.py", "adaptcli/deploy/formats/npz.py",
                                          "adaptcli/methods/mlp_scale/config.py",
                                          "adaptcli/methods/mlp_scale/method.py"]


def test_help_lists_the_new_entries(adaptcli_with_extensions):
    for command, name in (("prepare", "csvsplits: one CSV"), ("finetune", "mlp_scale: one learned scale"),
                          ("export", "npz: NumPy arrays")):
        result = adaptcli_with_extensions(command, "--help")
        assert result.returncode == 0, result.stderr
        assert name in " ".join(result.stdout.replace("│", " ").split()), command


def test_prepare_finetune_and_export_with_the_new_entries(adaptcli_with_extensions, tmp_path):
    src = tmp_path / "src"
    splits = {split: {name: colour_images(n, rgb, seed=3 + n) for name, rgb in COLOURS.items()}
              for split, n in (("train", 8), ("validation", 3), ("test", 3))}
    write_image_folder(src, splits)
    for split in splits:
        rows = [f"{p.relative_to(src)},{p.parent.name}" for p in sorted((src / split).rglob("*.jpg"))]
        (src / f"{split}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")

    shards, run, out = tmp_path / "shards", tmp_path / "run", tmp_path / "model.npz"
    prepared = adaptcli_with_extensions("prepare", "csvsplits", src, "--shards", shards, "--no-progress")
    assert prepared.returncode == 0, prepared.stderr
    trained = adaptcli_with_extensions("finetune", "--method", "mlp_scale", "--set", "method.init=0.5",
                                       "--recipe", "quick", "--data", shards, "--out", run, *TINY, *SHORT)
    assert trained.returncode == 0, trained.stderr
    exported = adaptcli_with_extensions("export", "--run", run, "--full", "--format", "npz", "--out", out)
    assert exported.returncode == 0, exported.stderr

    arrays = np.load(out)
    scales = [key for key in arrays.files if key.endswith("mlp_scale.scale")]
    assert scales and len(arrays.files) > len(scales)  # the whole model, the method's scales among it
    assert not np.allclose(arrays[scales[0]], 0.5)  # trained away from method.init
    lines = exported.stdout.splitlines()
    assert lines[-1] == f'use: import numpy; state = dict(numpy.load("{out}"))  # plain arrays, no configuration'
    assert f"wrote {out}: full, mlp_scale on " in exported.stdout
    assert "adaptcli.load" not in exported.stdout and "check" not in exported.stdout
    refused = adaptcli_with_extensions("predict", out, src)  # no open side: the format is write-only
    assert refused.returncode == 2 and "is not a run folder or an export adaptcli reads" in refused.stderr


def test_a_new_method_on_a_new_architecture(adaptcli_with_extensions):
    result = adaptcli_with_extensions("inspect-params", "--model", "vit_demo_patch8", "--method", "mlp_scale",
                                      "--num-classes", "10", "--json")
    assert result.returncode == 0, result.stderr
    assert '"method": "mlp_scale"' in result.stdout
