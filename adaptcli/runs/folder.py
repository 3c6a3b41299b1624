"""The run folder: everything later commands (eval, export) need, and nothing else.

    RUN/config.yaml          the resolved configuration (+ run.json: data folder, classes, modality)
    RUN/trainable.safetensors  trainable tensors of the last epoch (method + head), with metadata
    RUN/best.safetensors       the same for the epoch that was best on validation (when there is one)
    RUN/backbone.safetensors   frozen backbone weights, only when no --checkpoint file was given
    RUN/checkpoints/epoch-NNNN Accelerate save_state (model, optimiser, scheduler, RNG), last K kept
    RUN/metrics.jsonl          one JSON object per logged event
    RUN/summary.json, RUN/eval.json
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcli.config import RunConfig, load_run_config
from adaptcli.errors import AdaptError
from adaptcli.io import write_json, write_text

CHECKPOINT_PREFIX = "epoch-"
LOCK_NAME = "run.lock"


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


@dataclass
class RunDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def trainable_file(self) -> Path:
        return self.path / "trainable.safetensors"

    @property
    def best_file(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def backbone_file(self) -> Path:
        return self.path / "backbone.safetensors"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def eval_file(self) -> Path:
        return self.path / "eval.json"

    def is_run(self) -> bool:
        return self.config_file.exists() and self.info_file.exists()

    # ------------------------------------------------------------------ creation
    def prepare(self, config: RunConfig, *, resume: bool, overwrite: bool, data: Path | None = None) -> None:
        """Create the folder, or check that it is the same run when resuming.

        Only a folder adaptcli created (it has ``run.json``) is ever replaced; ``--out`` may not
        equal, contain or lie inside ``data``, nor hold the backbone checkpoint it would delete.
        """
        check_out_paths(self.path, data, config.model.checkpoint)
        if resume:
            if not self.is_run():
                if self.path.is_dir() and not self.info_file.exists() and any(self.visible_entries()):
                    raise AdaptError(f"--resume: {self.path} is not an adaptcli run folder (no run.json); "
                                     "pass the --out of a finetune run")
                self.path.mkdir(parents=True, exist_ok=True)
                return  # nothing was written yet: the run starts from step 0 (the trainer says so)
            stored = load_run_config(self.config_file)
            if stored != config:
                key = first_difference(stored.to_dict(), config.to_dict())
                raise AdaptError(
                    f"--resume: the configuration differs from {self.config_file} at '{key}'; "
                    "resume with the same recipe and --set values, or start a new --out"
                )
            return
        if self.path.exists() and not self.path.is_dir():
            raise AdaptError(f"--out {self.path} is a file, not a folder; choose a folder path for the run")
        entries = self.visible_entries() if self.path.exists() else []
        if entries:
            if not self.info_file.exists():
                found = ", ".join(sorted(p.name for p in entries)[:3]) + (", ..." if len(entries) > 3 else "")
                raise AdaptError(
                    f"--out {self.path} holds files that are not an adaptcli run (found: {found}; no run.json); "
                    "choose a new or empty folder"
                )
            if not overwrite:
                raise AdaptError(
                    f"--out {self.path} already holds a run; pass --resume to continue it or "
                    "--overwrite to replace it"
                )
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)

    def visible_entries(self) -> list[Path]:
        """What the folder holds, without the run lock (which belongs to the process holding it)."""
        return [p for p in self.path.iterdir() if p.name != LOCK_NAME]

    def clear(self) -> None:
        """Delete the run's contents (the folder holds run.json: adaptcli created it), keeping the lock."""
        for entry in self.visible_entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_config(self, config: RunConfig, info: dict[str, Any]) -> None:
        write_text(self.config_file, config.to_yaml())
        write_json(self.info_file, info)

    def info(self) -> dict[str, Any]:
        if not self.is_run():
            raise AdaptError(f"{self.path} is not a run folder (no config.yaml/run.json); pass the --out of a finetune run")
        return json.loads(self.info_file.read_text())

    def config(self) -> RunConfig:
        self.info()
        return load_run_config(self.config_file)

    def selected_weights(self) -> Path:
        """The weights eval and export use: best on validation when known, else the last epoch."""
        for path in (self.best_file, self.trainable_file):
            if path.exists():
                return path
        raise AdaptError(f"{self.path} has no trained weights yet; finish or resume the finetune run")

    def dependencies(self, config: RunConfig) -> set[Path]:
        """Resolved paths nothing may be written over: the run's own files, its data, its checkpoint."""
        own = {self.config_file, self.info_file, self.trainable_file, self.best_file, self.backbone_file,
               self.checkpoints, self.metrics_file, self.summary_file, self.eval_file, self.path / LOCK_NAME}
        found = {p.resolve() for p in own}
        if config.model.checkpoint:
            found.add(Path(config.model.checkpoint).resolve())
        if self.info_file.is_file():
            data = json.loads(self.info_file.read_text()).get("data")
            if data:
                found.add(Path(data).resolve())
        return found

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dirs(self) -> list[Path]:
        if not self.checkpoints.exists():
            return []
        found = [p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
        return sorted(found)

    def checkpoint_dir(self, epoch: int) -> Path:
        return self.checkpoints / f"{CHECKPOINT_PREFIX}{epoch:04d}"

    def prune_checkpoints(self, keep: int) -> None:
        for old in self.checkpoint_dirs()[:-keep] if keep > 0 else self.checkpoint_dirs():
            shutil.rmtree(old, ignore_errors=True)

    def log(self, record: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "(root)"
