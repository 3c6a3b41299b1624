"""How ``report`` names a run's or a suite's method: the method, then the training add-ons it was trained with.

A LoRA run with PACE (``train.pace_lambda`` > 0) or LoRA+ (``train.loraplus_ratio``) trains differently from a
plain LoRA run, so the table, the plot and ``--against`` keep them apart: ``lora``, ``lora+loraplus``,
``lora+pace``, ``lora+loraplus+pace``; ``+pace_noise`` is PACE's noise alone (``pace_sigma`` > 0,
``pace_lambda`` 0). A run without add-ons keeps its method's name.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.protocols.results import SuiteResults
from adaptcli.runs.folder import RunDir


def method_label(config: RunConfig) -> str:
    """``config.method`` with ``+loraplus``, ``+pace`` or ``+pace_noise`` for the add-ons it trains with."""
    train = config.train
    label = config.method
    if train.loraplus_ratio is not None:
        label += "+loraplus"
    if train.pace_lambda:
        label += "+pace"
    elif train.pace_sigma:
        label += "+pace_noise"
    return label


def suite_method_label(suite: Path, results: SuiteResults) -> str:
    """The suite's method as :func:`method_label` names it, from its first task's final run (a suite trains
    every task with one recipe); the recorded method where that run is not there to read. A damaged
    ``config.yaml`` is the one-line error naming it."""
    for row in results.tasks[:1]:
        folder = (Path(suite) / row.run).resolve()
        run = RunDir(folder)
        if Path(suite).resolve() in folder.parents and run.is_run():  # results.json names a folder of the suite
            return method_label(run.config())
    return results.method


__all__ = ["method_label", "suite_method_label"]
