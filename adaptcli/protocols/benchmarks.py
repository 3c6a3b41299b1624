"""The benchmarks a suite runs: their tasks, groups, splits and how the literature averages them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from adaptcli.data.prepare.sources.fgvc import FGVC_DATASETS
from adaptcli.data.prepare.sources.vtab import VTAB_TASKS
from adaptcli.errors import AdaptError
from adaptcli.registry import Registry

VTAB_GROUPS: dict[str, tuple[str, ...]] = {
    "natural": ("caltech101", "cifar", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"),
    "specialized": ("patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"),
    "structured": ("clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori",
                   "smallnorb_azi", "smallnorb_ele"),
}


@dataclass(frozen=True)
class Benchmark:
    """Where each step of the protocol trains, selects and tests."""

    name: str
    summary: str  # one line for --help
    tasks: tuple[str, ...]
    tune_split: str  # every sweep point trains here ...
    tune_val_split: str | None  # ... picking its epoch here (None: the last epoch) ...
    select_split: str  # ... and is scored here; the best point wins
    final_split: str  # the chosen point is retrained here
    final_val_split: str | None  # epoch selection of the final run (None: the last epoch)
    test_split: str
    recipe: str
    protocol: str
    any_task: bool = False  # FGVC: any prepared sub-folder is a task
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def group_of(self, task: str) -> str | None:
        return next((g for g, tasks in self.groups.items() if task in tasks), None)


#: The benchmarks ``adaptcli suite`` runs (registered below; the CLI's choices come from here).
BENCHMARKS: Registry[Benchmark] = Registry("benchmark", lambda bench: bench.summary)
BENCHMARKS.register(Benchmark(
    name="vtab", summary="VTAB-1k, 19 tasks", tasks=tuple(VTAB_TASKS), tune_split="train800", tune_val_split=None,
    select_split="val200", final_split="train800val200", final_val_split=None, test_split="test",
    recipe="vtab", groups=VTAB_GROUPS,
    protocol="VTAB-1k: each sweep point trains on train800 (last epoch) and is scored on val200; "
             "the best point is retrained on train800val200 (last epoch) and tested once on test",
))
BENCHMARKS.register(Benchmark(
    name="fgvc", summary="FGVC, 5 datasets", tasks=tuple(FGVC_DATASETS), tune_split="train", tune_val_split="val",
    select_split="val", final_split="train", final_val_split="val", test_split="test",
    recipe="fgvc", any_task=True,
    protocol="FGVC as ARC's FGVC script runs it: train on VPT's train split and test on test; the "
             "epoch and the sweep point are chosen on VPT's val split (never on test)",
))


def benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a one-line error with the closest name and the names there are."""
    return BENCHMARKS.get(name)


def find_tasks(bench: Benchmark, data: Path, wanted: list[str] | None) -> list[str]:
    """The prepared task folders under ``data`` (``<task>/dataset.json``), in the benchmark's order."""
    if not Path(data).is_dir():
        raise AdaptError(f"--data {data} is not a folder; pass the --shards folder of 'adaptcli prepare {bench.name}'")
    present = sorted(p.parent.name for p in Path(data).glob("*/dataset.json"))
    known = [t for t in bench.tasks if t in present]
    extra = [t for t in present if t not in bench.tasks] if bench.any_task else []
    found = known + extra
    if wanted:
        missing = [t for t in wanted if t not in found]
        if missing:
            raise AdaptError(f"--tasks: {', '.join(missing)} not prepared under {data} "
                             f"(found: {', '.join(found) or 'none'})")
        found = [t for t in found if t in wanted]
    if not found:
        raise AdaptError(f"no prepared {bench.name} task under {data} (expected <task>/dataset.json); "
                         f"run 'adaptcli prepare {bench.name} ROOT --shards {data}'")
    return found


def averages(bench: Benchmark, scores: dict[str, float]) -> dict[str, Any]:
    """Both averages papers print (mean over tasks; mean of the group means), with task counts."""
    total = len(bench.tasks)
    present = [t for t in bench.tasks if t in scores] + [t for t in scores if t not in bench.tasks]
    out: dict[str, Any] = {
        "tasks_present": len(present),
        "tasks_total": total,
        "complete": all(t in scores for t in bench.tasks),
        "mean_over_tasks": mean(scores[t] for t in present) if present else None,
    }
    if bench.groups:
        groups = {}
        for group, tasks in bench.groups.items():
            have = [scores[t] for t in tasks if t in scores]
            groups[group] = {"mean": mean(have) if have else None, "present": len(have), "total": len(tasks)}
        out["groups"] = groups
        means = [g["mean"] for g in groups.values() if g["mean"] is not None]
        out["mean_of_group_means"] = mean(means) if means else None
        out["groups_present"] = len(means)
    return out


def average_lines(bench: Benchmark, avg: dict[str, Any]) -> list[str]:
    """Human labels for :func:`averages`; a partial suite says so."""
    n, total = avg["tasks_present"], avg["tasks_total"]
    partial = "" if avg["complete"] else f" -- PARTIAL: {n} of {total} tasks, not comparable with a full-suite mean"
    lines = []
    if avg["mean_over_tasks"] is not None:
        lines.append(f"mean over tasks ({n} of {total}): {avg['mean_over_tasks']:.2f}{partial}")
    if bench.groups and avg.get("mean_of_group_means") is not None:
        parts = ", ".join(
            f"{g} {v['mean']:.2f} ({v['present']}/{v['total']})" if v["mean"] is not None else f"{g} none (0/{v['total']})"
            for g, v in avg["groups"].items())
        lines.append(f"mean of the {avg['groups_present']} group means: {avg['mean_of_group_means']:.2f}{partial} "
                     f"[{parts}]")
    return lines
