"""``report SUITE --against PAPER``: a suite's test scores beside a paper's row, per task and per group, with
the differences beyond a tolerance flagged, the data each side used, and the averages as the paper takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from adaptcli.errors import AdaptError
from adaptcli.files import read_json
from adaptcli.protocols.benchmarks import benchmark
from adaptcli.protocols.papers import Paper, PaperRow, PaperTable
from adaptcli.protocols.results import SuiteResults, read_settings

DEFAULT_TOLERANCE = 1.0  # points: the default of --tolerance
UNKNOWN = "unknown"
AVERAGE_LABELS = {"mean_over_tasks": "mean over tasks", "mean_of_group_means": "mean of group means"}


@dataclass
class Ours:
    """What is compared with the paper: a suite's test scores, or those of run folders of one method."""

    label: str  # the suite folder, or "runs"
    method: str
    backbone: str | None
    benchmark: str | None
    scores: dict[str, float]  # task -> test score
    variants: dict[str, str] = field(default_factory=dict)  # task -> data variant


def pick_row(paper: Paper, ours: Ours, wanted: str | None) -> tuple[PaperTable, PaperRow]:
    """The paper's row to compare with: ``wanted`` (``TABLE/ROW``, or a row name that is unique), else the one
    row of our method among the rows that share a task with ours."""
    candidates = [(t, r) for t, r in paper.rows() if set(ours.scores) & set(r.tasks)]
    what = f"{ours.benchmark} suite" if ours.benchmark else "these runs"
    if not candidates:
        tables = "; ".join(f"{t.id}: {', '.join(t.rows[0].tasks)}" for t in paper.tables if t.rows)
        raise AdaptError(f"--against {paper.name}: no row of the paper shares a task with {what} "
                         f"(ours: {', '.join(ours.scores)}; the paper's tables: {tables})")
    ids = [t.row_id(r) for t, r in candidates]
    if wanted:
        key = wanted.strip().lower()
        chosen = [(t, r) for t, r in candidates if key in (t.row_id(r).lower(), r.row.lower())]
        if len(chosen) != 1:
            how = "names several rows" if chosen else "names no row"
            raise AdaptError(f"--row {wanted} {how} of {paper.name} for {what}; give one of: {'; '.join(ids)}")
        return chosen[0]
    same = [(t, r) for t, r in candidates if r.method == ours.method]
    if len(same) == 1:
        return same[0]
    why = (f"several rows of {paper.name} are method {ours.method}" if same
           else f"no row of {paper.name} is method {ours.method}")
    options = [t.row_id(r) for t, r in same] if same else ids
    raise AdaptError(f"{why}; pick one with --row (one of: {'; '.join(options)})")


def suite_side(suite: Path, results: SuiteResults) -> Ours:
    """A suite's test scores and the data variant of each of its tasks."""
    scores = {r.task: r.test for r in results.tasks if r.test is not None}
    return Ours(label=str(suite), method=results.method, backbone=results.backbone, benchmark=results.benchmark,
                scores=scores, variants={t: data_variant(suite, t) for t in scores})


def runs_side(rows: list[dict[str, Any]]) -> list[Ours]:
    """Run folders grouped by method and backbone; each run's task is its dataset (a VTAB or FGVC run: the
    task folder). Only runs with a test score count; two runs of one group on one task are refused."""
    from adaptcli.protocols.benchmarks import BENCHMARKS
    from adaptcli.runs.folder import RunDir

    groups: dict[tuple[str, str | None], Ours] = {}
    for row in rows:
        if row["test"] is None:
            continue
        name, _, folder = str(row["dataset"]).partition("/")
        task = folder if folder and name in BENCHMARKS.names() else name
        side = groups.setdefault((row["method"], row["backbone"]),
                                 Ours(label="runs", method=row["method"], backbone=row["backbone"], benchmark=None,
                                      scores={}))
        if task in side.scores:
            raise AdaptError(f"two {row['method']} runs on {task} ({row['run']} and another); pass one of them")
        side.scores[task] = row["test"]
        try:
            side.variants[task] = manifest_variant(RunDir(Path(row["run"])).info().data_dir / "dataset.json")
        except (OSError, ValueError, KeyError, TypeError):
            side.variants[task] = UNKNOWN
    return list(groups.values())


def data_variant(suite: Path, task: str) -> str:
    """The data variant the suite's shard folder of ``task`` records (``unknown`` where none is recorded)."""
    try:
        return manifest_variant(Path(read_settings(suite)["data"]) / task / "dataset.json")
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN


def manifest_variant(path: Path) -> str:
    """The data variant a ``dataset.json`` records: ``variant`` or ``settings.variant`` (``unknown``: none)."""
    try:
        manifest = read_json(path)
    except (OSError, ValueError):
        return UNKNOWN
    if not isinstance(manifest, dict):
        return UNKNOWN
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    variant = manifest.get("variant") or settings.get("variant")
    return str(variant) if variant else UNKNOWN


def _mean(values: list[float]) -> float | None:
    return mean(values) if values else None


def _average(rule: str | None, scores: dict[str, float], groups: dict[str, tuple[str, ...]]) -> float | None:
    """``scores`` averaged the way ``rule`` says (None: the paper prints no average)."""
    if rule == "mean_over_tasks":
        return _mean(list(scores.values()))
    if rule == "mean_of_group_means":
        means = [m for m in (_mean([scores[t] for t in tasks if t in scores]) for tasks in groups.values())
                 if m is not None]
        return _mean(means)
    return None


def compare(ours: Ours, paper: Paper, row_name: str | None, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Ours, theirs and the difference per task, per group and on average, as JSON-ready data."""
    if tolerance < 0:
        raise AdaptError(f"--tolerance {tolerance}: give a difference in points, 0 or more")
    table, row = pick_row(paper, ours, row_name)
    name = table.benchmark or ours.benchmark
    bench = benchmark(name) if name else None
    order = [t for t in (bench.tasks if bench else ()) if t in ours.scores or t in row.tasks]
    order += [t for t in [*ours.scores, *row.tasks] if t not in order]
    tasks = []
    for task in order:
        mine, theirs = ours.scores.get(task), row.tasks.get(task)
        diff = None if mine is None or theirs is None else mine - theirs
        tasks.append({"task": task, "group": bench.group_of(task) if bench else None, "ours": mine, "theirs": theirs,
                      "difference": diff, "beyond_tolerance": diff is not None and abs(diff) > tolerance,
                      "data_variant": ours.variants.get(task, UNKNOWN) if mine is not None else None})
    both = [t["task"] for t in tasks if t["difference"] is not None]
    group_sets = bench.groups if bench else {}
    groups = []
    for group, members in group_sets.items():
        shared = [t for t in members if t in both]
        if shared:
            mine, theirs = mean(ours.scores[t] for t in shared), mean(row.tasks[t] for t in shared)
            groups.append({"group": group, "tasks": len(shared), "total": len(members), "ours": mine,
                           "theirs": theirs, "difference": mine - theirs,
                           "beyond_tolerance": abs(mine - theirs) > tolerance})
    average = None
    if table.average:
        mine = _average(table.average, {t: ours.scores[t] for t in both}, group_sets)
        theirs = _average(table.average, {t: row.tasks[t] for t in both}, group_sets)
        average = {"rule": table.average, "tasks": len(both), "paper_tasks": len(row.tasks),
                   "ours": mine, "theirs": theirs, "difference": mine - theirs,
                   "beyond_tolerance": abs(mine - theirs) > tolerance, "paper_printed": row.average}
    variants = sorted({t["data_variant"] for t in tasks if t["data_variant"]})
    return {"suite": ours.label, "method": ours.method, "backbone": ours.backbone,
            "benchmark": ours.benchmark, "tolerance": tolerance,
            "paper": {"name": paper.name, "title": paper.paper, "arxiv": paper.arxiv, "note": paper.note,
                      "table": table.table, "source": table.source, "row": row.row, "row_id": table.row_id(row),
                      "method": row.method, "params": row.params, "backbone": row.backbone or table.backbone,
                      "metric": table.metric, "data": table.data, "data_variant": table.data_variant or UNKNOWN,
                      "average": table.average},
            "ours_data_variant": ", ".join(variants) or UNKNOWN,
            "tasks": tasks, "groups": groups, "average": average}


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _flag(entry: dict[str, Any], tolerance: float) -> str:
    return f"beyond ±{tolerance:g}" if entry.get("beyond_tolerance") else ""


def to_markdown(comparison: dict[str, Any]) -> str:
    """One comparison as a Markdown section: header lines with the sources, then the table."""
    p, tol = comparison["paper"], comparison["tolerance"]
    arxiv = f", arXiv {p['arxiv']}" if p["arxiv"] else ""
    ours = (f"{comparison['benchmark']} suite {comparison['suite']}" if comparison["benchmark"]
            else f"{comparison['method']} runs")
    lines = [f"{ours} ({comparison['method']} on {comparison['backbone']}) against {p['name']}: {p['row_id']}", "",
             f"- theirs: {p['title']}{arxiv}; {p['table']}, row \"{p['row']}\" ({p['backbone']}; "
             f"params {p['params'] or '-'})",
             f"- source: {p['source']}",
             f"- data: ours {comparison['ours_data_variant']}; theirs {p['data_variant']} ({p['data']})",
             f"- flagged: differences beyond ±{tol:g} points (--tolerance)"]
    if p["note"]:
        lines.append(f"- note: {p['note']}")
    lines += ["", "| task | group | ours | theirs | ours - theirs | flag | our data |", "|---|---|---|---|---|---|---|"]
    for t in comparison["tasks"]:
        lines.append(f"| {t['task']} | {t['group'] or '-'} | {_num(t['ours'])} | {_num(t['theirs'])} | "
                     f"{_num(t['difference'], True)} | {_flag(t, tol)} | {t['data_variant'] or '-'} |")
    for g in comparison["groups"]:
        lines.append(f"| {g['group']} mean ({g['tasks']} of {g['total']} tasks) | | {_num(g['ours'])} | "
                     f"{_num(g['theirs'])} | {_num(g['difference'], True)} | {_flag(g, tol)} | |")
    avg = comparison["average"]
    if avg:
        label = AVERAGE_LABELS[avg["rule"]]
        lines.append(f"| {label} ({avg['tasks']} of the paper's {avg['paper_tasks']} tasks) | | {_num(avg['ours'])} | "
                     f"{_num(avg['theirs'])} | {_num(avg['difference'], True)} | {_flag(avg, tol)} | |")
        printed = f"; it prints {avg['paper_printed']:.2f} over its {avg['paper_tasks']} tasks" \
            if avg["paper_printed"] is not None else ""
        lines += ["", f"The paper averages as the {label}{printed}; both sides above are averaged that way over "
                      f"the tasks both have."]
    else:
        lines += ["", "The paper prints no average over these tasks; none is compared."]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ["suite", "paper", "row", "task", "group", "ours", "theirs", "difference", "beyond_tolerance",
               "our_data", "their_data", "source"]


def csv_rows(comparison: dict[str, Any]) -> list[list[Any]]:
    p = comparison["paper"]
    base = [comparison["suite"], p["name"], p["row_id"]]
    tail = [p["data_variant"], f"{p['source']}; {p['table']}"]
    out = [[*base, t["task"], t["group"] or "", t["ours"], t["theirs"], t["difference"], t["beyond_tolerance"],
            t["data_variant"] or "", *tail] for t in comparison["tasks"]]
    out += [[*base, f"{g['group']} mean", g["group"], g["ours"], g["theirs"], g["difference"], g["beyond_tolerance"],
             comparison["ours_data_variant"], *tail] for g in comparison["groups"]]
    avg = comparison["average"]
    if avg:
        out.append([*base, AVERAGE_LABELS[avg["rule"]], "", avg["ours"], avg["theirs"], avg["difference"],
                    avg["beyond_tolerance"], comparison["ours_data_variant"], *tail])
    return [["" if v is None else v for v in row] for row in out]


def plot(comparisons: list[dict[str, Any]], path: Path) -> Path:
    """Ours and theirs side by side per task (one panel per compared suite), flagged tasks marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaptcli.io import atomic_path

    fig, axes = plt.subplots(len(comparisons), 1, figsize=(max(6.4, 0.55 * max(len(c["tasks"]) for c in comparisons)),
                                                            3.6 * len(comparisons)), dpi=120, squeeze=False)
    for ax, c in zip(axes[:, 0], comparisons):
        names = [t["task"] for t in c["tasks"]]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [t["ours"] or 0 for t in c["tasks"]], 0.4, label=f"ours ({c['method']})")
        ax.bar([x + 0.2 for x in xs], [t["theirs"] or 0 for t in c["tasks"]], 0.4,
               label=f"{c['paper']['name']}: {c['paper']['row']}")
        for x, t in zip(xs, c["tasks"]):
            if t["beyond_tolerance"]:
                ax.annotate(f"{t['difference']:+.1f}", (x, max(t["ours"], t["theirs"])), ha="center",
                            textcoords="offset points", xytext=(0, 3), fontsize=7, color="crimson")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"test {c['paper']['metric']} (%)")
        ax.set_title(f"{c['benchmark'] or c['method']}: {c['suite']} vs {c['paper']['row_id']}", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
