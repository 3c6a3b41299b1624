"""Seeing the configuration without training (``config``, ``finetune --dry-run``), ``env`` for bug reports,
and shell completion from the registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import resolve
from adaptcli.methods.registry import method_names
from tests.engine.conftest import image_shards  # noqa: F401

runner = CliRunner()


def test_config_prints_a_recipe_that_resolves_to_the_same_configuration(tmp_path):
    result = runner.invoke(app, ["config", "--recipe", "quick", "--method", "lora", "--set", "method.r=4",
                                 "--set", "train.epochs=7"])
    assert result.exit_code == 0, result.output
    saved = tmp_path / "mine.yaml"
    saved.write_text(result.stdout)
    again = resolve(str(saved), method="lora", overrides=[])
    assert again == resolve("quick", method="lora", overrides=["method.r=4", "train.epochs=7"])
    assert again.method_options.r == 4 and again.train.epochs == 7


def test_config_refuses_a_bad_override_in_one_line():
    result = runner.invoke(app, ["config", "--recipe", "quick", "--method", "lora", "--set", "train.epochs=-1"])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_finetune_dry_run_prints_the_plan_and_writes_nothing(image_shards, tmp_path):
    out = tmp_path / "run"
    args = ["finetune", "--method", "lora", "--recipe", "quick", "--data", str(image_shards), "--out", str(out),
            "--set", "model.img_size=32", "--set", "train.batch_size=8", "--set", "train.epochs=3"]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    counted = json.loads(runner.invoke(app, ["inspect-params", "--model", "test_vit", "--method", "lora",
                                             "--num-classes", "3", "--set", "model.img_size=32", "--json"]).stdout)
    assert f"parameters: {counted['trainable_params']:,} trainable" in result.stdout
    assert "train on 'train' (48 samples), validate on 'validation' (18)" in result.stdout
    assert "steps: 6 per epoch x 3 epochs at batch 8 x 1 process(es) = 18 optimiser steps" in result.stdout
    assert f"out: {out}: a new run folder" in result.stdout and "nothing was trained or written" in result.stdout
    assert not out.exists()


def test_finetune_dry_run_refuses_what_the_run_would_refuse(image_shards, tmp_path):
    result = runner.invoke(app, ["finetune", "--method", "lora", "--recipe", "quick", "--data", str(tmp_path),
                                 "--out", str(tmp_path / "run"), "--dry-run"])
    assert result.exit_code == 2 and "prepare the data first" in result.stderr


def test_env_reports_versions_and_devices():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["packages"]["torch"] == version("torch") and found["packages"]["adaptcli"] == version("adaptcli")
    assert found["cuda_available"] == torch.cuda.is_available() and found["torch_cuda_build"] == torch.version.cuda
    lines = runner.invoke(app, ["env"]).stdout
    assert f"torch        {version('torch')}" in lines and "CUDA: " in lines


def _complete(shell: str, words: str) -> str:
    env = {**os.environ, "_ADAPTCLI_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
    else:
        env["_TYPER_COMPLETE_ARGS"] = words
    done = subprocess.run([sys.executable, "-c", "from adaptcli.cli import app; app(prog_name='adaptcli')"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("words,expected,absent", [
    ("adaptcli finetune --method ad", ["adaptformer", "adapter_plus"], ["arc"]),
    ("adaptcli finetune --recipe vt", ["vtab"], ["ssv2"]),
    ("adaptcli prepare vt", ["vtab"], ["ssv2"]),
    ("adaptcli suite f", ["fgvc"], ["vtab"]),
])
def test_shell_completion_offers_registered_names(words, expected, absent):
    offered = _complete("bash", words).split()
    assert all(name in offered for name in expected) and not any(name in offered for name in absent), offered


@pytest.mark.parametrize("command", ["config", "env"])
def test_new_commands_help_has_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example: adaptcli " + command in result.stdout


def _accepts(schema: dict, value) -> bool:
    """A small JSON-schema check for the keywords json_schema emits (no jsonschema dependency)."""
    if "anyOf" in schema:
        return any(_accepts(option, value) for option in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    kind = schema.get("type")
    types = {"boolean": bool, "string": str, "object": dict, "array": list, "null": type(None)}
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if kind == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return False
    if kind in types and not isinstance(value, types[kind]):
        return False
    checks = {"minimum": lambda b: value >= b, "exclusiveMinimum": lambda b: value > b,
              "maximum": lambda b: value <= b, "exclusiveMaximum": lambda b: value < b,
              "minItems": lambda b: len(value) >= b, "maxItems": lambda b: len(value) <= b}
    if not all(check(schema[key]) for key, check in checks.items() if key in schema):
        return False
    if kind == "array":
        return all(_accepts(schema["items"], item) for item in value)
    if kind == "object" and "properties" in schema:
        if schema.get("additionalProperties") is False and set(value) - set(schema["properties"]):
            return False
        return all(_accepts(schema["properties"][k], v) for k, v in value.items() if k in schema["properties"])
    return True


@pytest.mark.parametrize("method", ["lora", "arc", "adaptformer", "linear"])
def test_schema_accepts_every_shipped_recipe_and_refuses_what_the_validator_refuses(method):
    from adaptcli.config import json_schema, shipped_recipes

    result = runner.invoke(app, ["config", "--method", method, "--schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(json_schema(method)))
    for name in shipped_recipes():
        assert _accepts(schema, resolve(name, method=method, overrides=[]).to_dict()), name
    train = schema["properties"]["train"]["properties"]
    assert train["lr"]["exclusiveMinimum"] == 0 and train["epochs"]["minimum"] == 1
    assert schema["properties"]["data"]["properties"]["decode"]["enum"] == ["cpu", "cuda", "auto"]
    good = resolve("quick", method=method, overrides=[]).to_dict()
    for section, key, bad in (("train", "epochs", 0), ("train", "lr", 0), ("data", "decode", "gpu"),
                              ("data", "crop_scale", [0.5]), ("train", "nosuchkey", 1)):
        broken = json.loads(json.dumps(good))
        broken[section][key] = bad
        assert not _accepts(schema, broken), (section, key, bad)


@pytest.mark.parametrize("method", method_names())
def test_schema_describes_every_key_with_its_default(method):
    from adaptcli.config import json_schema, valid_keys

    sections = json_schema(method)["properties"]
    described = {f"{section}.{key}": entry for section, schema in sections.items()
                 for key, entry in schema["properties"].items()}
    assert set(valid_keys(method)) <= set(described)
    for key in valid_keys(method):
        assert described[key].get("description", "").strip(), f"{key} has no description"
        assert "default" in described[key], f"{key} has no default"
    assert sections["method"]["properties"]["name"] == {"const": method, "description": "The method."}
