"""The papers' published per-task tables, stored as data (``papers/<name>.yaml``), each number with its source.

A paper holds tables; a table says where it was read, its benchmark (``vtab``, ``fgvc`` or none), the backbone,
the data the paper names and how the paper averages (``mean_over_tasks``, ``mean_of_group_means`` or none);
its rows carry the paper's row name, the adaptcli method it corresponds to (None where no method matches)
and the score per task as printed. ``papers/not_stored.yaml`` names the papers whose tables could not be
read, with the reason: they are refused with it rather than filled with numbers nobody checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from adaptcli.errors import AdaptError

PAPERS_DIR = Path(__file__).parent / "papers"
NOT_STORED_FILE = "not_stored.yaml"
AVERAGES = ("mean_over_tasks", "mean_of_group_means")


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's table: the scores of one method (variant) on each task."""

    row: str
    method: str | None  # the adaptcli method this row is (None: none matches)
    tasks: dict[str, float]  # empty where the source gives only group means or the average
    groups: dict[str, float] = field(default_factory=dict)  # the paper's group means, where only those are stored
    params: str | None = None  # as printed
    average: float | None = None  # the paper's printed average, where it prints one
    backbone: str | None = None  # where the table's rows differ in backbone
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperTable:
    """One table of a paper."""

    id: str
    table: str
    source: str
    benchmark: str | None
    metric: str
    backbone: str
    data: str
    data_variant: str | None
    average: str | None
    rows: tuple[PaperRow, ...]

    def row_id(self, row: PaperRow) -> str:
        return f"{self.id}/{row.row}"


@dataclass(frozen=True)
class Paper:
    name: str
    paper: str
    arxiv: str | None
    note: str
    tables: tuple[PaperTable, ...]

    def rows(self) -> list[tuple[PaperTable, PaperRow]]:
        return [(table, row) for table in self.tables for row in table.rows]


def _scores(data: Any, what: str) -> dict[str, float]:
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in data.values()):
        raise ValueError(f"{what} must map each name to a number")
    return {str(k): float(v) for k, v in data.items()}


def _row(data: dict[str, Any], where: str) -> PaperRow:
    tasks = _scores(data.get("tasks") or {}, f"{where}: tasks")
    groups = _scores(data.get("groups") or {}, f"{where}: groups")
    if not tasks and not groups and data.get("average") is None:
        raise ValueError(f"{where}: a row needs task scores, group means or an average")
    return PaperRow(row=str(data["row"]), method=data.get("method"), tasks=tasks, groups=groups,
                    params=None if data.get("params") is None else str(data["params"]), average=data.get("average"),
                    backbone=data.get("backbone"), options=dict(data.get("options") or {}))


def _table(data: dict[str, Any], where: str) -> PaperTable:
    average = data.get("average")
    if average is not None and average not in AVERAGES:
        raise ValueError(f"{where}: average must be one of {', '.join(AVERAGES)} or null, not {average!r}")
    rows = tuple(_row(r, f"{where} row {i}") for i, r in enumerate(data.get("rows") or []))
    return PaperTable(id=str(data["id"]), table=str(data["table"]), source=str(data["source"]),
                      benchmark=data.get("benchmark"), metric=str(data.get("metric", "top1")),
                      backbone=str(data["backbone"]), data=str(data["data"]), data_variant=data.get("data_variant"),
                      average=average, rows=rows)


def read_paper(path: Path) -> Paper:
    """One stored paper file; ``ValueError`` naming what is malformed."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    where = Path(path).name
    tables = tuple(_table(t, f"{where} table {i}") for i, t in enumerate(data.get("tables") or []))
    return Paper(name=str(data["name"]), paper=str(data["paper"]), arxiv=data.get("arxiv"),
                 note=str(data.get("note", "")), tables=tables)


@cache
def stored_papers() -> dict[str, Paper]:
    """Every paper whose table is stored, by name."""
    papers = [read_paper(p) for p in sorted(PAPERS_DIR.glob("*.yaml")) if p.name != NOT_STORED_FILE]
    return {p.name: p for p in papers}


@cache
def not_stored() -> dict[str, str]:
    """Papers adaptcli knows of whose table is not stored, with the reason."""
    data = yaml.safe_load((PAPERS_DIR / NOT_STORED_FILE).read_text(encoding="utf-8")) or {}
    return {str(name): str(entry["reason"]) for name, entry in data.items()}


def paper(name: str) -> Paper:
    """The stored paper ``name`` (any case, ``-``/``_`` alike, ``+`` as ``plus``: ``V-PETL``, ``Adapter+``), or a
    one-line error listing the known ones."""
    key = name.strip().lower().replace("+", "plus").replace("-", "").replace("_", "")
    papers = stored_papers()
    for known, found in papers.items():
        if known.replace("_", "") == key:
            return found
    known_list = ", ".join(papers)
    for missing, reason in not_stored().items():
        if missing.replace("_", "") == key:
            raise AdaptError(f"--against {name}: this paper's table is not stored ({reason}); "
                             f"papers with a stored table: {known_list}")
    raise AdaptError(f"--against {name}: unknown paper; known: {known_list}")
