"""``report SUITE --against PAPER``: a suite's test scores beside a paper's row, per task and per group, with
the differences beyond a tolerance flagged, the data each side used, and the averages as the paper takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from adaptcli.data.manifest import read_manifest
from adaptcli.errors import AdaptError
from adaptcli.protocols.benchmarks import BENCHMARKS, benchmark
from adaptcli.protocols.method_label import suite_method_label
from adaptcli.protocols.papers import Paper, PaperRow, PaperTable
from adaptcli.protocols.results import SuiteResults, read_settings
from adaptcli.runs.folder import RunDir

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
    candidates = [(t, r) for t, r in paper.rows()
                  if set(ours.scores) & set(r.tasks) or (t.benchmark and t.benchmark == ours.benchmark)]
    what = f"{ours.benchmark} suite" if ours.benchmark else "these runs"
    if not candidates:
        tables = "; ".join(f"{t.id}: {', '.join(t.rows[0].tasks) or f'{t.benchmark} suites only (no per-task scores)'}"
                           for t in paper.tables if t.rows)
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
    return Ours(label=str(suite), method=suite_method_label(suite, results), backbone=results.backbone, benchmark=results.benchmark,
                scores=scores, variants={t: data_variant(suite, t) for t in scores})


def runs_side(rows: list[dict[str, Any]]) -> list[Ours]:
    """Run folders grouped by method and backbone; each run's task is its dataset (a VTAB or FGVC run: the
    task folder). Only runs with a test score count; two runs of one group on one task are refused."""
    groups: dict[tuple[str, str | None], Ours] = {}
    for row in rows:
        if row["test"] is None:
            continue
        info = RunDir(Path(row["run"])).info()
        name, folder = info.dataset or "", info.data_dir.name
        task = folder if name in BENCHMARKS.names() else (name or folder)
        side = groups.setdefault((row["method"], row["backbone"]),
                                 Ours(label="runs", method=row["method"], backbone=row["backbone"], benchmark=None,
                                      scores={}))
        if task in side.scores:
            raise AdaptError(f"two {row['method']} runs on {task} ({row['run']} and another); pass one of them")
        side.scores[task] = row["test"]
        side.variants[task] = manifest_variant(info.data_dir / "dataset.json")
    return list(groups.values())


def data_variant(suite: Path, task: str) -> str:
    """The data variant the suite's shard folder of ``task`` records (``unknown`` where none is recorded)."""
    try:
        return manifest_variant(Path(read_settings(suite)["data"]) / task / "dataset.json")
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN


def manifest_variant(path: Path) -> str:
    """The data variant the ``dataset.json`` at ``path`` records (:attr:`Manifest.variant`); ``unknown`` where
    none is recorded or the file cannot be read."""
    try:
        variant = read_manifest(path.parent).variant
    except AdaptError:
        return UNKNOWN
    return variant or UNKNOWN


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
        if group in row.groups:  # only the paper's group mean is stored: ours over the tasks we have
            shared, theirs = [t for t in members if t in ours.scores], row.groups[group]
        else:
            shared = [t for t in members if t in both]
            theirs = mean(row.tasks[t] for t in shared) if shared else None
        if shared:
            mine = mean(ours.scores[t] for t in shared)
            groups.append({"group": group, "tasks": len(shared), "total": len(members), "ours": mine,
                           "theirs": theirs, "difference": mine - theirs, "theirs_over": "paper" if group in row.groups
                           else "same tasks", "beyond_tolerance": abs(mine - theirs) > tolerance})
    average = None
    # a mean of group means needs the benchmark's groups
    rule = table.average if table.average != "mean_of_group_means" or group_sets else None
    if rule and both:  # both sides over the tasks both have
        mine = _average(table.average, {t: ours.scores[t] for t in both}, group_sets)
        theirs = _average(table.average, {t: row.tasks[t] for t in both}, group_sets)
        average = {"rule": table.average, "tasks": len(both), "paper_tasks": len(row.tasks), "theirs_over": "same tasks",
                   "ours": mine, "theirs": theirs, "difference": mine - theirs,
                   "beyond_tolerance": abs(mine - theirs) > tolerance, "paper_printed": row.average}
    elif rule and row.average is not None and ours.scores:  # only the paper's average is stored
        mine = _average(table.average, ours.scores, group_sets)
        average = {"rule": table.average, "tasks": len(ours.scores), "paper_tasks": len(bench.tasks) if bench else None,
                   "theirs_over": "paper", "ours": mine, "theirs": row.average, "difference": mine - row.average,
                   "beyond_tolerance": abs(mine - row.average) > tolerance, "paper_printed": row.average}
    if not both and not groups and average is None:
        raise AdaptError(f"--against {paper.name}: row {table.row_id(row)} has nothing to compare with {ours.label} "
                         f"(ours: {', '.join(ours.scores) or 'no test score'})")
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
        over = f"ours {g['tasks']} of {g['total']} tasks; theirs: the paper's group mean" \
            if g["theirs_over"] == "paper" else f"{g['tasks']} of {g['total']} tasks"
        lines.append(f"| {g['group']} mean ({over}) | | {_num(g['ours'])} | "
                     f"{_num(g['theirs'])} | {_num(g['difference'], True)} | {_flag(g, tol)} | |")
    avg = comparison["average"]
    if avg:
        label = AVERAGE_LABELS[avg["rule"]]
        if avg["theirs_over"] == "paper":
            of = f" of {avg['paper_tasks']}" if avg["paper_tasks"] else ""
            over = f"ours {avg['tasks']}{of} tasks; theirs: the paper's"
            how = (f"The paper averages as the {label} and prints {avg['paper_printed']:.2f}; ours is averaged that "
                   f"way over the tasks we have (the paper's per-task scores are not stored).")
        else:
            over = f"{avg['tasks']} of the paper's {avg['paper_tasks']} tasks"
            printed = f"; it prints {avg['paper_printed']:.2f} over its {avg['paper_tasks']} tasks" \
                if avg["paper_printed"] is not None else ""
            how = (f"The paper averages as the {label}{printed}; both sides above are averaged that way over "
                   f"the tasks both have.")
        lines.append(f"| {label} ({over}) | | {_num(avg['ours'])} | "
                     f"{_num(avg['theirs'])} | {_num(avg['difference'], True)} | {_flag(avg, tol)} | |")
        lines += ["", how]
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

    from adaptcli.io import write_figure

    widest = max(len(c["tasks"]) + len(c["groups"]) + 1 for c in comparisons)
    fig, axes = plt.subplots(len(comparisons), 1, figsize=(max(6.4, 0.55 * widest),
                                                            3.6 * len(comparisons)), dpi=120, squeeze=False)
    for ax, c in zip(axes[:, 0], comparisons):
        bars = [(t["task"], t["ours"], t["theirs"], t["difference"], t["beyond_tolerance"]) for t in c["tasks"]]
        bars += [(f"{g['group']} mean", g["ours"], g["theirs"], g["difference"], g["beyond_tolerance"])
                 for g in c["groups"]]
        if c["average"]:
            a = c["average"]
            bars.append((AVERAGE_LABELS[a["rule"]], a["ours"], a["theirs"], a["difference"], a["beyond_tolerance"]))
        names = [b[0] for b in bars]
        xs = range(len(bars))
        ax.bar([x - 0.2 for x, b in zip(xs, bars) if b[1] is not None], [b[1] for b in bars if b[1] is not None], 0.4,
               label=f"ours ({c['method']})")
        ax.bar([x + 0.2 for x, b in zip(xs, bars) if b[2] is not None], [b[2] for b in bars if b[2] is not None], 0.4,
               label=f"{c['paper']['name']}: {c['paper']['row']}")
        for x, (_, mine, theirs, diff, flagged) in zip(xs, bars):
            if flagged:
                ax.annotate(f"{diff:+.1f}", (x, max(mine, theirs)), ha="center",
                            textcoords="offset points", xytext=(0, 3), fontsize=7, color="crimson")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"test {c['paper']['metric']} (%)")
        ax.set_title(f"{c['benchmark'] or c['method']}: {c['suite']} vs {c['paper']['row_id']}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(True, axis="y", alpha=0.3)
    return write_figure(path, fig)
