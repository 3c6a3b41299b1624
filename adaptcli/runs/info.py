"""``run.json``: what a run was trained on and how far it got (:class:`RunInfo`, its only reader and writer).

The facts (data folder, dataset, modality, classes, task kind, method, model, normalisation, eval views,
the data's fingerprint, the backbone file and its hash) are written once when the run starts; the
state (``running`` / ``interrupted`` / ``finished`` with the epoch, step, checkpoint and reason) as
the run goes. Files written by earlier adaptcli versions lack some keys: those read as None and are
not written back, so an old ``run.json`` reads and writes back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adaptcli.files import read_json
from adaptcli.io import write_json

#: Keys every run.json adaptcli wrote holds (written even when empty, in this order).
_ALWAYS = ("data", "dataset", "modality", "classes", "num_classes")


@dataclass
class RunInfo:
    """The typed ``run.json`` of a run folder."""

    data: str | None = None  # the resolved shard folder the run was trained on
    dataset: str | None = None
    modality: str | None = None
    classes: list[str] = field(default_factory=list)
    num_classes: int = 0
    task: str | None = None  # single-label / multi-label (None: written before it was recorded)
    method: str | None = None
    model: str | None = None
    mean: list[float] | None = None  # the backbone's input normalisation
    std: list[float] | None = None
    views: str | None = None  # eval.views: CLIPSxCROPS
    data_fingerprint: str | None = None  # SHA-256 of the shard folder's dataset.json
    backbone_file: str | None = None  # the frozen weights the run starts from (None: timm's pretrained ones)
    backbone_sha256: str | None = None
    state: str | None = None  # running / interrupted / finished (None: written before states were recorded)
    epoch: int | None = None
    step: int | None = None
    checkpoint: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    @property
    def multi_label(self) -> bool:
        return self.task == "multi-label"

    @property
    def progress(self) -> str:
        """The state, ``finished`` for runs written before states were recorded (they all finished)."""
        return self.state or "finished"

    @property
    def data_dir(self) -> Path:
        """The shard folder; ``KeyError('data')`` when the file lacks it (a damaged run.json)."""
        if self.data is None:
            raise KeyError("data")
        return Path(self.data)

    def to_dict(self) -> dict[str, Any]:
        """The ``run.json`` object: the historical keys first, then those that are set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and (f.name in _ALWAYS or value is not None):
                out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        """Any ``run.json`` adaptcli wrote; ``ValueError`` when it is not a JSON object."""
        if not isinstance(data, dict):
            raise ValueError("run.json is not a JSON object")
        known = {f.name for f in fields(cls)} - {"extra"}
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.extra = {k: v for k, v in data.items() if k not in known}
        if "classes" in data:
            info.classes = [str(c) for c in data["classes"]]
        return info

    @classmethod
    def read(cls, path: Path) -> RunInfo:
        return cls.from_dict(read_json(path))

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())


__all__ = ["RunInfo"]
