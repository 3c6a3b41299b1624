"""The package ships every subpackage, the recipes and the papers' tables, also in a non-editable install."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "adaptcli").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_non_editable_install_ships_the_recipes(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )
    code = (
        "import adaptcli, adaptcli.config as c\n"
        f"assert adaptcli.__file__.startswith({str(target)!r}), adaptcli.__file__\n"
        "names = sorted(c.shipped_recipes())\n"
        "assert {'quick', 'vtab', 'ssv2'} <= set(names), names\n"
        "c.resolve('vtab', 'arc')\n"
        "from adaptcli.protocols.papers import stored_papers\n"
        "assert {'adaptformer', 'vpetl'} <= set(stored_papers()), stored_papers()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
