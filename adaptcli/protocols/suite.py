"""``adaptcli suite``: a method over every task of a benchmark, tuned per task, resumable by re-running.

    OUT/suite.json                 the settings (a re-run with other settings is refused)
    OUT/<task>/sweep/<point>/      one ordinary run folder per sweep point (eval.json: the selection split)
    OUT/<task>/final/              the chosen point on the final split (eval.json: test)
    OUT/results.md|json|csv        test score per task (top-1; mAP for multi-label tasks), the chosen point,
                                   the averages
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptcli.config import RunConfig, resolve
from adaptcli.data.splits import canonical_split, resolve_split
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.errors import AdaptError, ConfigError, Interrupted
from adaptcli.protocols.benchmarks import Benchmark, averages, benchmark, find_tasks
from adaptcli.protocols.grid import Point, grid_points
from adaptcli.output import Output
from adaptcli.ownership import claim_folder
from adaptcli.protocols.results import SuiteResults, SuiteRow, read_settings
from adaptcli.runs.folder import RunDir, check_out_paths, difference, shown_value
from adaptcli.runs.results import METRIC_LABELS, EvalResult, TrainSummary

Log = Callable[[str], None]
SUITE_FILE = "suite.json"
#: What the suite writes at the top of its folder; each task folder holds run folders, claimed one by one.
SUITE_ENTRIES = (SUITE_FILE, "results.md", "results.json", "results.csv")


#: The options a suite sets per step from its benchmark (never the user's).
SPLIT_KEYS = ("data.train_split", "data.val_split", "data.test_split")


@dataclass
class SuiteSpec:
    """What the user asked for; ``overrides`` are ``--set`` strings (model and checkpoint included)."""

    benchmark: str
    method: str
    data: Path
    out: Path
    recipe: str | None = None
    overrides: list[str] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    tasks: list[str] | None = None

    def __post_init__(self) -> None:
        """The benchmark names every step's splits: a ``--set`` or ``--sweep`` of one would be ignored."""
        for key in [*(text.split("=", 1)[0].strip() for text in self.overrides), *self.grid]:
            if key in SPLIT_KEYS:
                option = "--sweep" if key in self.grid else "--set"
                raise ConfigError(f"{option} {key}: a suite trains, selects and tests on the splits its benchmark "
                                  f"names for each step ({self.benchmark}: see `adaptcli suite --dry-run`); drop it, "
                                  "or run `adaptcli finetune` for other splits")

    def settings(self) -> dict[str, Any]:
        """What must not change between runs of one suite (tasks may: they can be spread over machines)."""
        return {"benchmark": self.benchmark, "method": self.method, "recipe": self.recipe or self.bench.recipe,
                "overrides": list(self.overrides), "grid": self.grid, "data": str(Path(self.data).resolve())}

    @property
    def bench(self) -> Benchmark:
        return benchmark(self.benchmark)


@dataclass
class Step:
    """One run folder of the suite."""

    task: str
    kind: str  # "sweep" or "final"
    point: Point
    path: Path
    config: RunConfig
    data: Path
    eval_split: str

    def label(self) -> str:
        return f"{self.task} {self.kind} {self.point.name}"


def step_config(spec: SuiteSpec, task: str, point: Point, train_split: str, val_split: str | None) -> RunConfig:
    """The task's settings (the recipe's ``per_task`` section included), the point and the splits, the splits
    named as the task's data names them (:func:`as_recorded`)."""
    splits = [f"data.train_split={train_split}", f"data.val_split={val_split if val_split else 'null'}",
              f"data.test_split={spec.bench.test_split}"]
    config = resolve(spec.recipe or spec.bench.recipe, method=spec.method,
                     overrides=[*spec.overrides, *point.overrides, *splits], task=task)
    return as_recorded(config, Path(spec.data) / task)


def as_recorded(config: RunConfig, data: Path) -> RunConfig:
    """``config`` with ``data.train_split`` / ``data.test_split`` as its run on ``data`` records them: the data's
    own name where the split-name table finds it (the benchmark's ``test`` is the data's ``testing``, as
    :func:`~adaptcli.runs.session.check_training_data` names it), so a re-run compares like with like. A name the
    data lacks stays: the run refuses it."""
    available = ShardFolder.read(data).manifest.splits
    named = {key: resolve_split(getattr(config.data, key), available) or getattr(config.data, key)
             for key in ("train_split", "test_split")}
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **named))


def sweep_steps(spec: SuiteSpec, task: str, points: list[Point]) -> list[Step]:
    """No sweep runs for a grid of one point: tuning is skipped."""
    if len(points) < 2:
        return []
    bench = spec.bench
    return [Step(task, "sweep", p, Path(spec.out) / task / "sweep" / p.name,
                 step_config(spec, task, p, bench.tune_split, bench.tune_val_split), Path(spec.data) / task,
                 bench.select_split) for p in points]


def final_step(spec: SuiteSpec, task: str, point: Point) -> Step:
    bench = spec.bench
    return Step(task, "final", point, Path(spec.out) / task / "final",
                step_config(spec, task, point, bench.final_split, bench.final_val_split), Path(spec.data) / task,
                bench.test_split)


# ---------------------------------------------------------------------------- run folder states


def status(step: Step) -> tuple[str, str]:
    """(state, detail): done | evaluate | resume | restart | new | differs (detail: the first key that differs)."""
    state, detail = RunDir(step.path).state_for(step.config, step.data)
    if state == "finished":
        return ("done" if read_eval(step) is not None else "evaluate"), ""
    return state, detail


def read_eval(step: Step) -> EvalResult | None:
    """The run's eval.json when it holds the split this step is scored on."""
    path = RunDir(step.path).eval_file
    if not path.exists():
        return None
    result = EvalResult.read(path)
    return result if canonical_split(result.split) == canonical_split(step.eval_split) else None


def refuse_if_changed(step: Step, overwrite: bool) -> None:
    state, key = status(step)
    if state == "differs" and not overwrite:
        raise AdaptError(f"{step.path} was trained with a different setting at {key}; re-run the same command "
                         "to continue, or pass --overwrite to retrain the runs whose settings changed")


def execute(step: Step, overwrite: bool, output: Output | None = None) -> tuple[EvalResult, str]:
    """Train (or resume) and evaluate ``step`` unless it is done; (its metrics, the state it was found in).
    ``output``: where the run reports (its ``bars``: whether the run's own progress bars are drawn)."""
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.evaluate import evaluate_run
    from adaptcli.engine.finetune import finetune

    state, _ = status(step)
    partial_state().wait_for_everyone()  # every process decided from the same files
    if state == "differs":
        refuse_if_changed(step, overwrite)
    try:
        if state in ("new", "restart", "differs"):
            finetune(step.config, step.data, step.path, overwrite=state != "new", output=output)
        elif state == "resume":
            finetune(step.config, step.data, step.path, resume=True, output=output)
    except Interrupted as exc:  # SIGTERM/SIGUSR1: the run saved a checkpoint; the suite resumes it when re-run
        raise Interrupted(f"{str(exc).split('; ')[0]}; re-run the same suite command to continue") from None
    if state != "done":
        evaluate_run(step.path, split=step.eval_split, output=output)
    partial_state().wait_for_everyone()
    metrics = read_eval(step)
    if metrics is None:  # pragma: no cover - evaluate_run always writes it on the main process
        raise AdaptError(f"{step.path}/eval.json was not written")
    return metrics, state


def copy_run(source: Path, target: Path) -> None:
    """The final run when its configuration equals the chosen sweep run's: the same training, not repeated."""
    from adaptcli.engine.distributed import partial_state

    if partial_state().is_main_process:
        RunDir(source).copy_to(target)
    partial_state().wait_for_everyone()


def choose(steps: list[Step], scores: dict[str, float]) -> Point:
    """The point with the best selection score; ties go to the first in grid order."""
    best = max(range(len(steps)), key=lambda i: (scores[steps[i].point.name], -i))
    return steps[best].point


# ---------------------------------------------------------------------------- the suite


def check_settings(spec: SuiteSpec, overwrite: bool) -> None:
    """Refuse a suite folder made with other settings (unless ``overwrite``), a folder that is not a
    suite (no ``suite.json``: adaptcli writes into nothing else), and an ``--out`` that is, contains or
    lies inside ``--data``."""
    out = Path(spec.out)
    check_out_paths(out, Path(spec.data), None)
    # --overwrite retrains the runs whose settings changed, run folder by run folder: never the whole suite
    if not claim_folder(out, SUITE_FILE, SUITE_ENTRIES, None, what="an adaptcli suite").found:
        return
    file = out / SUITE_FILE
    try:
        stored = read_settings(out)
    except (ValueError, AttributeError) as exc:
        raise AdaptError(f"{file} is damaged ({str(exc)[:120]}); move the suite folder away or choose another "
                         "--out") from None
    if stored != spec.settings() and not overwrite:
        raise AdaptError(f"{spec.out} holds a suite with a different {settings_difference(stored, spec.settings())} "
                         f"({file}); re-run the same command "
                         "to continue it, or pass --overwrite to retrain what changed")


def _set_values(overrides: Any) -> dict[str, str]:
    """``--set`` strings as ``{key: value as typed}``, the last of a repeated key winning (as in resolve)."""
    found: dict[str, str] = {}
    for text in overrides if isinstance(overrides, list) else []:
        key, _, value = str(text).partition("=")
        found[key.strip()] = value
    return found


def settings_difference(stored: dict[str, Any], given: dict[str, Any]) -> str:
    """The first setting that differs with both values; a changed ``--set`` by its own key
    (``--set method.dim (stored 8, now 4)``), not as the whole override list."""
    old, new = _set_values(stored.get("overrides")), _set_values(given.get("overrides"))
    changed = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
    if changed:
        key = changed[0]
        shown = [shown_value(values.get(key)) for values in (old, new)]
        more = f" and {len(changed) - 1} more --set key(s)" if len(changed) > 1 else ""
        return f"--set {key} (stored {shown[0]}, now {shown[1]}){more}"
    return difference(stored, given)


def check_runs(spec: SuiteSpec, tasks: list[str], points: list[Point], overwrite: bool) -> None:
    """Everything the suite refuses before training, run by run, checked before it trains any (the suite and
    its dry run both call this): the suite folder's settings, a run trained with other settings, and
    finetune's own pre-training checks (:func:`~adaptcli.engine.preflight.check_before_training`) for
    each run still to train. The final run is checked with the first point (the one it uses without a
    sweep; another point changes only its sweep keys)."""
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.preflight import check_before_training

    main = partial_state().is_main_process  # the others leave the run folders to it (it may have begun one)
    check_settings(spec, overwrite)
    for task in tasks:
        sweeps = sweep_steps(spec, task, points)
        final = final_step(spec, task, points[0])
        for step in [*sweeps, final]:
            state, _ = status(step)
            if state in ("done", "evaluate") or (state == "differs" and step is final and sweeps):
                continue  # nothing to train; or a final whose point the sweep has not chosen yet
            refuse_if_changed(step, overwrite)
            check_before_training(step.config, step.data, step.path, resume=state == "resume",
                                  overwrite=state in ("restart", "differs"), main=main)


def plan_lines(spec: SuiteSpec, tasks: list[str], points: list[Point], *, overwrite: bool = False) -> list[str]:
    """The dry-run: tasks, points, runs and what each would do; nothing is trained or written. What the suite
    would refuse before training (:func:`check_runs`) is refused here too."""
    check_runs(spec, tasks, points, overwrite)
    bench = spec.bench
    lines = [f"suite {bench.name}: method {spec.method}, {len(tasks)} task(s), {len(points)} sweep point(s)",
             f"protocol: {bench.protocol}"]
    if len(points) > 1:
        lines.append("points: " + "; ".join(f"{p.name} ({', '.join(p.overrides)})" for p in points))
    else:
        lines.append("one point: tuning is skipped, only the final run trains")
    common = settings_line(final_step(spec, tasks[0], points[0]).config) if tasks else ""
    lines.append(f"settings: {common}" + (" (sweep keys vary per point)" if len(points) > 1 else ""))
    todo = 0
    for task in tasks:
        own = settings_line(final_step(spec, task, points[0]).config)
        if own != common:
            lines.append(f"  {task} settings: {own}")
        sweeps = sweep_steps(spec, task, points)
        scores = {}
        for step in sweeps:
            state, key = status(step)
            todo += state != "done"
            if state == "done":
                scores[step.point.name] = read_eval(step).headline
            lines.append(f"  {step.path}: {_describe(state, key)}")
        chosen = points[0] if len(points) == 1 else (choose(sweeps, scores) if len(scores) == len(sweeps) else None)
        if chosen is None:
            lines.append(f"  {Path(spec.out) / task / 'final'}: after tuning (best {bench.select_split} point)")
            todo += 1
        else:
            state, key = status(final_step(spec, task, chosen))
            todo += state != "done"
            lines.append(f"  {Path(spec.out) / task / 'final'}: point {chosen.name}, {_describe(state, key)}")
    lines.append(f"{todo} run(s) to train or evaluate; --dry-run trained nothing")
    return lines


def settings_line(config: RunConfig) -> str:
    """The values a paper's protocol fixes, in one line (the dry-run's view of a run's settings)."""
    train = config.train
    warmup = f"{train.warmup_epochs:g} warm-up" + (f" from {train.warmup_lr:g}" if train.warmup_lr is not None else "")
    cooldown = f", {train.cooldown_epochs} at min lr" if train.cooldown_epochs else ""
    options = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config.method_options).items())
    extras = [f"{name} {value:g}" for name, value in (("ema", train.ema), ("layer decay", train.layer_decay),
              ("mixup", train.mixup), ("cutmix", train.cutmix), ("erasing", train.random_erasing)) if value]
    extras += [f"RandAugment {config.data.rand_augment}"] if config.data.rand_augment else []
    extras += [f"PACE lambda {train.pace_lambda:g} sigma {train.pace_sigma:g}"] if train.pace_sigma else []
    extras += [f"LoRA+ ratio {train.loraplus_ratio:g}"] if train.loraplus_ratio else []
    return (f"{train.optimizer} lr {train.lr:g} wd {train.weight_decay:g}, batch {train.batch_size}, "
            f"{train.epochs} epochs ({warmup}, cosine per {train.schedule_unit} to {train.min_lr:g}{cooldown}), "
            f"drop path {config.model.drop_path:g}, clip {train.clip_grad}, smoothing {train.label_smoothing:g}, "
            f"augment {config.data.augment}" + "".join(f", {e}" for e in extras)
            + f"; method {config.method}" + (f" ({options})" if options else ""))


def _describe(state: str, key: str) -> str:
    return {"done": "done (skipped)", "evaluate": "trained, to evaluate", "resume": "interrupted, resumes",
            "restart": "interrupted before its first checkpoint, restarts", "new": "to train",
            "differs": f"DIFFERS at {key}, --overwrite retrains it"}[state]


def run_suite(spec: SuiteSpec, *, overwrite: bool = False, log: Log = print, progress: bool = True) -> SuiteResults:
    """Run (or continue) the whole protocol; writes OUT/results.* after every task and returns the results."""
    from tqdm.auto import tqdm

    from adaptcli.engine.distributed import partial_state
    from adaptcli.protocols.results import write_results, write_settings

    bench = spec.bench
    tasks = find_tasks(bench, spec.data, spec.tasks)
    points = grid_points(spec.grid)
    check_runs(spec, tasks, points, overwrite)  # refuse before training anything
    main = partial_state().is_main_process
    out = Path(spec.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_settings(out, spec.settings(), bench.protocol)
    total = len(tasks) * (len(sweep_steps(spec, tasks[0], points)) + 1)
    bar = tqdm(total=total, disable=not (main and progress), desc=f"suite {bench.name}", unit="run", position=0)
    done = 0
    for task in tasks:
        sweeps = sweep_steps(spec, task, points)
        scores: dict[str, float] = {}
        for step in sweeps:
            metrics, state = execute(step, overwrite, Output(bars=progress))
            scores[step.point.name] = metrics.headline
            done += 1
            bar.update(1)
            _log_step(log, main, done, total, step, metrics, state)
        chosen = choose(sweeps, scores) if sweeps else points[0]
        final = final_step(spec, task, chosen)
        refuse_if_changed(final, overwrite)
        if sweeps and status(final)[0] == "new" and final.config == sweeps[points.index(chosen)].config:
            copy_run(sweeps[points.index(chosen)].path, final.path)
            if main:
                log(f"{task}: the final configuration equals sweep point {chosen.name}'s: copied, not retrained")
        metrics, state = execute(final, overwrite, Output(bars=progress))
        done += 1
        bar.update(1)
        _log_step(log, main, done, total, final, metrics, state)
        if main:
            write_results(out, collect(spec, points))
    bar.close()
    results = collect(spec, points)
    if main:
        write_results(out, results)
    return results


def collect(spec: SuiteSpec, points: list[Point]) -> SuiteResults:
    """Every prepared task's state in OUT (also tasks another ``--tasks`` run finished)."""
    bench = spec.bench
    rows, scores = [], {}
    for task in find_tasks(bench, spec.data, None):
        sweeps = sweep_steps(spec, task, points)
        val = {s.point.name: read_eval(s).headline for s in sweeps if status(s)[0] == "done"}
        if len(val) < len(sweeps):
            continue
        chosen = choose(sweeps, val) if sweeps else points[0]
        final = final_step(spec, task, chosen)
        if status(final)[0] != "done":
            continue
        tested = read_eval(final)
        summary = TrainSummary.read(RunDir(final.path).summary_file)
        scores[task] = tested.headline
        rows.append(SuiteRow(
            task=task, group=bench.group_of(task), metric=tested.metric, test=tested.headline, chosen=chosen.as_dict(),
            point=chosen.name, selection_split=bench.select_split, selection=val.get(chosen.name), sweep=val,
            trainable_params=summary.trainable_params, trainable_percent=summary.trainable_percent,
            run=str(final.path.relative_to(spec.out)),
        ))
    config = final_step(spec, rows[0].task, points[0]).config if rows else None
    return SuiteResults(benchmark=bench.name, method=spec.method, backbone=config.model.name if config else None,
                        protocol=bench.protocol, grid=spec.grid, tasks=rows, averages=averages(bench, scores))


def _log_step(log: Log, main: bool, done: int, total: int, step: Step, result: EvalResult, state: str) -> None:
    what = {"done": "done before, skipped", "evaluate": "evaluated", "resume": "resumed and trained"}.get(state, "trained")
    if main:
        log(f"[{done}/{total}] {step.label()}: {step.eval_split} {METRIC_LABELS[result.metric]} "
            f"{result.headline:.2f} ({what})")
