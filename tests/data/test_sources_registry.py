"""The dataset registry: names, help and the CLI's choices come from the source modules."""

from pathlib import Path

import pytest

import adaptcli.data.prepare.sources as sources_package
from adaptcli.data.prepare.sources.registry import SOURCES, dataset_help
from adaptcli.errors import AdaptError


def test_names_in_order_with_help():
    assert SOURCES.names() == ("ssv2", "hmdb51", "ucf101", "kinetics", "vtab", "cifar100", "svhn", "food101", "fgvc",
                               "imagefolder", "videofolder", "nuswide", "imagelist", "videolist")
    text = dataset_help()
    assert all(f"{name}: " in text for name in SOURCES.names())
    assert all(SOURCES.get(name).help and "\n" not in SOURCES.get(name).help for name in SOURCES.names())


def test_every_module_of_the_folder_is_discovered():
    """No hand-kept list: each reader module in the folder registers the sources it defines."""
    folder = Path(sources_package.__file__).parent
    readers = {p.stem for p in folder.glob("*.py")} - {"__init__", "base", "registry"}
    readers_of = [getattr(SOURCES.get(name).find, "func", SOURCES.get(name).find) for name in SOURCES.names()]
    registered_from = {reader.__module__.rsplit(".", 1)[-1] for reader in readers_of}  # a partial: its func
    assert readers == registered_from


def test_unknown_name_lists_the_choices():
    with pytest.raises(AdaptError, match="unknown dataset 'nosuch': choose one of ssv2, hmdb51, ucf101, kinetics, vtab"):
        SOURCES.get("nosuch")


def test_cli_help_lists_every_source(run_cli):
    result = run_cli("prepare", "--help")
    assert result.exit_code == 0
    assert all(name in result.output for name in SOURCES.names())
