"""``--no-progress`` on every command that draws bars (issue 32 item 9: finetune and eval lacked it): no
bar on stderr, the same results and summary lines on stdout."""

from __future__ import annotations

from typer.testing import CliRunner

from adaptcli.cli import app
from tests.reliability.conftest import TINY

runner = CliRunner()
def has_bar(stderr: str) -> bool:
    """tqdm's rate field closes every bar it draws."""
    return any(mark in stderr for mark in ("it/s]", "step/s]", "s/step]", "batch/s]", "s/batch]"))


def test_finetune_and_eval_without_bars(tiny_shards, tmp_path):
    outputs: dict[bool, str] = {}
    for quiet in (False, True):
        run = tmp_path / f"run-{quiet}"
        extra = ["--no-progress"] if quiet else []
        trained = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data",
                                      str(tiny_shards), "--out", str(run), *TINY, "--set", "train.epochs=1", *extra])
        assert trained.exit_code == 0, trained.output
        evaluated = runner.invoke(app, ["eval", "--run", str(run), *extra])
        assert evaluated.exit_code == 0, evaluated.output
        assert has_bar(trained.stderr + evaluated.stderr) is not quiet, (trained.stderr + evaluated.stderr)[-2000:]
        outputs[quiet] = evaluated.stdout.replace(str(run), "RUN")
    assert outputs[True] == outputs[False]  # the same numbers, bars or not
