"""The run folder: everything later commands (eval, export) need, and nothing else.

What adaptcli writes there is :class:`RunDir`'s :class:`RunFile` table (each entry's name and what it
holds), plus ``RUN/run.lock`` (pid, host and start time of the process training the run, while it
runs), the trackers' folder and the single-file outputs' ledger. A folder is recognised as a run by
its ``run.json``: adaptcli replaces nothing else.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from adaptcli.config import RunConfig, from_dict
from adaptcli.errors import AdaptError
from adaptcli.files import UnboundedYaml, parse_yaml, read_text_bounded
from adaptcli.io import naming_errors, write_text
from adaptcli.output import Output
from adaptcli.ownership import FolderClaim, claim_folder
from adaptcli.runs.info import RunInfo
from adaptcli.runs.lock import LOCK_NAME, TAKEOVER_NAME, RunLock

CHECKPOINT_PREFIX = "epoch-"


def _inside(path: Path, folder: Path) -> bool:
    """``path`` equals ``folder`` or lies inside it (both resolved, symlinks followed)."""
    return path == folder or folder in path.parents


def check_out_paths(out: Path, data: Path | None, checkpoint: str | None) -> None:
    """``--out`` never equals, contains or lies inside ``--data``, nor holds the run's checkpoint file."""
    target = Path(out).resolve()
    if data is not None:
        source = Path(data).resolve()
        if _inside(target, source) or _inside(source, target):
            relation = "is" if target == source else ("lies inside" if _inside(target, source) else "contains")
            raise AdaptError(f"--out {out} {relation} --data {data}; write the run to a folder outside the data")
    if checkpoint and _inside(Path(checkpoint).resolve(), target):
        raise AdaptError(f"--out {out} holds the backbone checkpoint {checkpoint} the run reads; "
                         "move the checkpoint or choose another --out")


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run's resolved ``config.yaml`` back (one line naming the file when it is not YAML adaptcli reads)."""
    try:
        tree = parse_yaml(read_text_bounded(path))
    except (yaml.YAMLError, UnicodeDecodeError, UnboundedYaml) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdaptError(f"{path} is not a configuration adaptcli reads ({why}); restore the run's config.yaml "
                         "or train the run again") from None
    return from_dict(tree)


def started_config(stored: RunConfig, given: RunConfig) -> RunConfig:
    """A run's ``stored`` configuration with what the method's data pass recorded in its options put back as
    ``given`` has it (:meth:`~adaptcli.methods.base.Method.started_options`): equal to ``given`` when the run
    started from it."""
    from adaptcli.methods.apply import get_method

    if stored.method != given.method:
        return stored
    options = get_method(stored.method).started_options(stored.method_options, given.method_options)
    return replace(stored, method_options=options)


class RunFile:
    """One entry of the run folder's file table: its name and what it holds; on a :class:`RunDir`, its path."""

    def __init__(self, name: str, what: str) -> None:
        self.name, self.what = name, what

    def __get__(self, run: RunDir | None, owner: type) -> Path:
        return self if run is None else run.path / self.name  # type: ignore[return-value]


@dataclass
class RunDir:
    path: Path

    config_file = RunFile("config.yaml", "the resolved configuration")
    info_file = RunFile("run.json", "what the run is trained on and its state (runs.info.RunInfo)")
    trainable_file = RunFile("trainable.safetensors", "trainable tensors of the last checkpoint (method + head)")
    best_file = RunFile("best.safetensors", "the same for the epoch that was best on validation (when there is one)")
    ema_file = RunFile("ema.safetensors", "the weight EMA's trainable tensors at the last checkpoint (train.ema)")
    backbone_file = RunFile("backbone.safetensors", "frozen backbone weights, only when no --checkpoint file was given")
    checkpoints = RunFile("checkpoints", "Accelerate save_state per epoch-NNNN[-step-SSSSSSSS] (names sort in "
                                         "training order, the last K are kept)")
    metrics_file = RunFile("metrics.jsonl", "one JSON object per logged event")
    summary_file = RunFile("summary.json", "what training reports (runs.results.TrainSummary)")
    eval_file = RunFile("eval.json", "the last evaluation (runs.results.EvalResult)")
    feature_cache_folder = RunFile("feature-cache", "the feature cache's files while training when it does not fit "
                                                    "in memory (engine.feature_store; deleted when training ends)")

    @classmethod
    def files(cls) -> dict[str, RunFile]:
        """The file table: attribute name -> entry."""
        return {name: entry for name, entry in vars(cls).items() if isinstance(entry, RunFile)}

    def is_run(self) -> bool:
        return self.config_file.exists() and self.info_file.exists()

    # ------------------------------------------------------------------ creation
    def prepare(self, config: RunConfig, *, resume: bool, overwrite: bool, data: Path | None = None,
                output: Output | None = None) -> RunLock:
        """Create the folder (or check that it is the same run when resuming) and take its lock.

        Only a folder adaptcli created (it has ``run.json``) is ever replaced; ``--out`` may not
        equal, contain or lie inside ``data``, nor hold the backbone checkpoint it would delete. A
        folder another live process trains is refused, naming it. Returns the held lock (a note about
        a stale lock it replaced goes to ``output.warn``).
        """
        claim = self.check_out(config, resume=resume, overwrite=overwrite, data=data)
        lock = RunLock(self.path)
        note = lock.acquire()
        if note:
            (output or Output()).warn(note)
        if claim.found and overwrite and not resume:
            try:
                left = claim.clear()
            except BaseException:
                lock.release()
                raise
            if left:
                shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
                (output or Output()).warn(f"--overwrite replaced the run in {self.path} and left {len(left)} "
                                          f"entr{'y' if len(left) == 1 else 'ies'} adaptcli did not write: {shown}")
        return lock

    def check_out(self, config: RunConfig, *, resume: bool, overwrite: bool, data: Path | None = None) -> FolderClaim:
        """What :meth:`prepare` refuses, checked without writing anything (``finetune --dry-run`` asks it too):
        ``--out`` against ``data`` and the checkpoint, a live lock, a folder that is not this run."""
        check_out_paths(self.path, data, config.model.checkpoint)
        if self.path.is_dir():
            RunLock(self.path).refuse_if_held()
        claim = self.claim(None if resume else overwrite, resume="--resume")
        if resume and self.is_run():
            stored = load_run_config(self.config_file)
            started = started_config(stored, config)
            if started != config:
                raise AdaptError(
                    f"--resume: the configuration differs from {self.config_file} at "
                    f"{difference(started.to_dict(), config.to_dict())}; "
                    "resume with the same recipe and --set values, or start a new --out"
                )
        return claim

    def claim(self, overwrite: bool | None, *, option: str = "--out", whole: bool = False,
              resume: str | None = None) -> FolderClaim:
        """:func:`~adaptcli.ownership.claim_folder` for a run folder: marked by ``run.json``, holding
        :data:`RUN_ENTRIES`; the run lock and its takeover file belong to the lock and are never touched
        (unlinking a file another process may hold a ``flock`` on would break the takeover rule)."""
        return claim_folder(self.path, self.info_file.name, RUN_ENTRIES, overwrite, what="an adaptcli run",
                            option=option, ignore=(LOCK_NAME, TAKEOVER_NAME), whole=whole, resume=resume)

    def resumed_config(self, config: RunConfig) -> RunConfig:
        """The configuration a ``--resume`` of this run trains: the recorded one where it is ``config`` plus
        what the run's data pass recorded (EVA's ranks: the shapes its checkpoint holds), else ``config``."""
        if self.is_run():
            stored = load_run_config(self.config_file)
            if stored != config and started_config(stored, config) == config:
                return stored
        return config

    def write_config(self, config: RunConfig, info: RunInfo) -> None:
        write_text(self.config_file, config.to_yaml())
        self.write_info(info)

    def write_info(self, info: RunInfo) -> None:
        info.write(self.info_file)

    def stored_info(self) -> RunInfo:
        """``run.json`` as written (an older file's missing keys are None)."""
        return RunInfo.read(self.info_file)

    def info(self) -> RunInfo:
        """The run's :class:`RunInfo`; a run written before the task kind was recorded gets it from its
        ``summary.json`` or, before that exists, from its data's manifest (single-label when neither says)."""
        self._require_run()
        info = self.stored_info()
        if info.task is None:
            info.task = self._older_run_task(info)
        return info

    def _older_run_task(self, info: RunInfo) -> str:
        from adaptcli.data.manifest import read_manifest
        from adaptcli.runs.results import TrainSummary

        try:
            if self.summary_file.is_file():
                return TrainSummary.read(self.summary_file).task
            if info.data is not None:
                return read_manifest(info.data).task
        except (OSError, ValueError, AdaptError):
            pass
        return "single-label"

    def config(self) -> RunConfig:
        self._require_run()
        return load_run_config(self.config_file)

    def _require_run(self) -> None:
        if not self.is_run():
            raise AdaptError(f"{self.path} is not a run folder (no config.yaml/run.json); pass the --out of a finetune run")

    def weights_file(self, which: str) -> Path:
        """``selected`` (best on validation, else last), ``last``, ``best`` or ``ema`` (train.ema)."""
        if which == "selected":
            return self.selected_weights()
        path = {"last": self.trainable_file, "best": self.best_file, "ema": self.ema_file}[which]
        if not path.is_file():
            why = {"best": "no validation split chose one", "ema": "the run was trained without train.ema",
                   "last": "the run has not finished an epoch"}[which]
            raise AdaptError(f"{self.path} has no {path.name} ({why}); choose other --weights")
        return path

    def selected_weights(self) -> Path:
        """The weights eval and export use: best on validation when known, else the last epoch."""
        for path in (self.best_file, self.trainable_file):
            if path.exists():
                return path
        raise AdaptError(f"{self.path} has no trained weights yet; finish or resume the finetune run")

    def dependencies(self, config: RunConfig) -> set[Path]:
        """Resolved paths nothing may be written over: the run's own files, its data, its checkpoint."""
        own = {getattr(self, name) for name in self.files()} | {self.path / LOCK_NAME}
        found = {p.resolve() for p in own}
        if config.model.checkpoint:
            found.add(Path(config.model.checkpoint).resolve())
        if self.info_file.is_file():
            data = self.stored_info().data
            if data:
                found.add(Path(data).resolve())
        return found

    # ------------------------------------------------------------------ what a command finds here
    def state_for(self, config: RunConfig, data: Path) -> tuple[str, str]:
        """What this folder is for a run of ``config`` on ``data`` (run.json and config.yaml read once):
        ``new`` (missing or empty), ``restart`` (not a run yet, or no checkpoint to resume from),
        ``differs`` (with the first setting that differs), ``finished`` (it has its summary) or ``resume``."""
        if not self.path.exists() or not any(self.path.iterdir()):
            return "new", ""
        if not self.is_run():
            return "restart", ""
        stored = load_run_config(self.config_file)
        if stored != config:
            return "differs", difference(stored.to_dict(), config.to_dict())
        trained_on = self.stored_info().data_dir
        if trained_on != Path(data).resolve():
            return "differs", f"'data' (stored {trained_on}, now {Path(data).resolve()})"
        if self.summary_file.exists():
            return "finished", ""
        return ("resume" if self.checkpoint_dirs() else "restart"), ""

    def copy_to(self, target: Path) -> None:
        """Copy this run to ``target`` (replacing a run adaptcli wrote there) without its evaluation,
        checkpoints and lock: the same training, not repeated."""
        from adaptcli.io import atomic_path

        RunDir(target).claim(True, option="", whole=True)  # the copy is renamed over it
        left_out = (RunDir.eval_file.name, RunDir.checkpoints.name, RunDir.feature_cache_folder.name, LOCK_NAME,
                    TAKEOVER_NAME)
        with atomic_path(target) as tmp:
            shutil.copytree(self.path, tmp, ignore=shutil.ignore_patterns(*left_out))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dirs(self) -> list[Path]:
        if not self.checkpoints.exists():
            return []
        found = [p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
        return sorted(found)

    def checkpoint_dir(self, epoch: int, step: int | None = None) -> Path:
        """``epoch-NNNN`` after ``epoch`` complete epochs; ``epoch-NNNN-step-SSSSSSSS`` inside the next one."""
        name = f"{CHECKPOINT_PREFIX}{epoch:04d}" + (f"-step-{step:08d}" if step is not None else "")
        return self.checkpoints / name

    def prune_checkpoints(self, keep: int) -> None:
        for old in self.checkpoint_dirs()[:-keep] if keep > 0 else self.checkpoint_dirs():
            shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------ state
    def set_state(self, state: str, **fields: Any) -> None:
        """Record ``running`` / ``interrupted`` / ``finished`` (with epoch, step, ...) in run.json."""
        info = self.stored_info() if self.info_file.is_file() else RunInfo()
        self.write_info(replace(info, state=state, **fields))

    def unfinished_note(self, weights: Path) -> str | None:
        """One warning line when the run did not finish, naming the epoch/step of ``weights``."""
        state = self.info().progress
        if state == "finished":
            return None
        if state == "running" and RunLock(self.path).live_holder() is not None:
            how = "still training"
        elif state == "running":
            how = "killed"
        else:
            how = state
        from adaptcli.io import read_safetensors

        _, meta = read_safetensors(weights, tensors=False)
        return (f"warning: unfinished run {self.path} ({how}): using {weights.name} from epoch "
                f"{meta.get('epoch', '?')}, step {meta.get('step', '?')}; finish it with finetune --resume")

    def log(self, record: dict[str, Any]) -> None:
        with naming_errors(self.metrics_file), self.metrics_file.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


#: Everything adaptcli writes in a run folder (``--overwrite`` removes these and nothing else): the file
#: table, the trackers' folder (Accelerate's project name), the single-file outputs' ledger.
RUN_ENTRIES = frozenset({entry.name for entry in RunDir.files().values()} | {"adaptcli", ".adaptcli-outputs.json"})


def first_difference(a: Any, b: Any, prefix: str = "") -> str:
    """The dotted key of the first place two nested mappings differ (``(root)`` when they are not both
    mappings)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "(root)"


def _value_at(data: Any, key: str) -> Any:
    for part in key.split(".") if key != "(root)" else []:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def shown_value(value: Any, limit: int = 200) -> str:
    """A setting's value for a one-line message: whole up to ``limit`` characters, else both ends (where
    two long paths differ)."""
    text = "not set" if value is None else " ".join(str(value).split())
    half = (limit - 5) // 2
    return text if len(text) <= limit else f"{text[:half]} ... {text[-half:]}"


def difference(stored: Any, given: Any) -> str:
    """What differs, for a refusal: ``'train.lr' (stored 0.003, now 0.01)``."""
    key = first_difference(stored, given)
    shown = [shown_value(_value_at(d, key)) for d in (stored, given)]
    return f"'{key}' (stored {shown[0]}, now {shown[1]})"
