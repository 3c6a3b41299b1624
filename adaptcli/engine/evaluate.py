"""Evaluation: every sample once across processes, multi-view averaging for video; runs and loaded models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from adaptcli.config import parse_views
from adaptcli.data.splits import resolve_split
from adaptcli.data.stream.evaluation import EvalStream
from adaptcli.engine.metrics import average_views, classification_metrics, multilabel_metrics
from adaptcli.errors import AdaptError
from adaptcli.ownership import claim_file, record_file
from adaptcli.output import Output
from adaptcli.runs.results import EvalResult
from adaptcli.runs.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.data.manifest import Manifest
    from adaptcli.runs.folder import RunDir


@torch.no_grad()
def score_loader(model: nn.Module, accelerator: Any, loader: EvalStream, show: bool = False,
                 multi_label: bool = False, damaged: dict[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Softmax (multi-label: sigmoid) scores averaged over views, labels and keys of this process's share;
    the shards the loader skipped as damaged are added to ``damaged``."""
    from tqdm.auto import tqdm

    scores, labels, keys = [], [], []
    model.eval()
    for batch in tqdm(loader, disable=not show, desc="evaluating", unit="batch", dynamic_ncols=True):
        inputs = batch.inputs_on(accelerator.device)
        views = 1
        if inputs.ndim == 6:  # B x V x C x T x H x W
            views = inputs.shape[1]
            inputs = inputs.flatten(0, 1)
        with accelerator.autocast():
            logits = model(inputs)
        scores.append(average_views(logits, views, multi_label).cpu())
        labels.append(batch.labels)
        keys.extend(batch.keys)
    if damaged is not None:
        damaged.update(loader.damaged)
    if not scores:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long), []
    return torch.cat(scores), torch.cat(labels), keys


def evaluate_model(session: Session, accelerator: Any, split: str, views: tuple[int, int], show: bool = False,
                   scores_file: Path | None = None, skip_damaged: bool = False) -> EvalResult:
    """Metrics of ``session.model`` on ``split``, identical on every process.

    ``scores_file``: also write every sample's scores and targets (sorted by key) as safetensors
    (``scores``: N x C, ``targets``: N or N x C; the keys and classes in the metadata).

    A damaged shard is an error naming it; with ``skip_damaged`` the other samples are evaluated and
    ``missing_samples`` / ``damaged_shards`` say what was left out.
    """
    from adaptcli.data.stream.counts import check_split_count
    from adaptcli.data.stream.evaluation import eval_loader
    from adaptcli.engine.device import pins_memory

    manifest, data_dir = session.manifest, session.shards.path
    split = resolve_split(split, manifest.splits) or split  # "validation" finds a "val" split, and back
    if split not in manifest.splits:
        raise AdaptError(f"split '{split}' is not in {data_dir} (has {', '.join(manifest.splits)}); pass --split NAME")
    if not skip_damaged:
        check_split_count(session.shards, split)
    loader = eval_loader(session.shards, split, session.spec, session.config.eval.batch_size, views=views,
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         workers=session.config.data.workers, skip_damaged=skip_damaged,
                         pin_memory=pins_memory(accelerator.device))
    model = session.model
    was_training = model.training
    damaged: dict[str, str] = {}
    scores, labels, keys = score_loader(model, accelerator, loader, show=show, multi_label=session.multi_label,
                                        damaged=damaged)
    model.train(was_training)
    seen, damaged = _gather(accelerator, keys, scores, labels, damaged, session.multi_label)
    if not seen:
        raise AdaptError(f"split '{split}' of {data_dir} has no samples")
    expected = manifest.split(split).samples
    if not skip_damaged and len(seen) != expected:
        raise AdaptError(f"evaluated {len(seen):,} samples of split '{split}' but {data_dir}/dataset.json claims "
                         f"{expected:,}; prepare the data again, or pass --skip-damaged to report on the "
                         f"{len(seen):,} there are")
    all_scores, all_labels, metrics = _score(session, split, seen)
    if scores_file is not None and accelerator.is_main_process:
        from adaptcli.io import save_tensors

        save_tensors(scores_file, {"scores": all_scores, "targets": all_labels},
                     {"keys": sorted(seen), "classes": manifest.classes, "split": split})
        record_file(Path(scores_file))
        metrics.update(scores_file=str(scores_file))
    metrics.update(split=split, views=f"{views[0]}x{views[1]}")
    if skip_damaged:
        metrics.update(missing_samples=max(0, expected - len(seen)),
                       damaged_shards={Path(url).name: reason for url, reason in sorted(damaged.items())})
    return EvalResult.from_dict(metrics)


def _gather(accelerator: Any, keys: list[str], scores: torch.Tensor, labels: torch.Tensor,
            damaged: dict[str, str], multi: bool) -> tuple[dict[str, tuple[torch.Tensor, Any]], dict[str, str]]:
    """Every process's (score, label) by sample key, and the damaged shards of all processes."""
    from accelerate.utils import gather_object

    rows = [(k, s, l if multi else int(l)) for k, s, l in zip(keys, scores, labels)]
    if accelerator.num_processes > 1:
        rows = gather_object(rows)
        damaged = {k: v for part in gather_object([damaged]) for k, v in part.items()}
    seen = {key: (score, label) for key, score, label in rows}
    if len(seen) != len(rows):  # the loader promises every sample exactly once
        raise RuntimeError(f"evaluation saw {len(rows) - len(seen)} samples more than once")
    return seen, damaged


def _score(session: Session, split: str,
           seen: dict[str, tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(scores, targets, metrics) over the samples sorted by key."""
    ordered = [seen[k] for k in sorted(seen)]
    all_scores = torch.stack([score for score, _ in ordered])
    classes = session.manifest.classes
    if session.multi_label:
        all_labels = torch.stack([label for _, label in ordered])
        return all_scores, all_labels, multilabel_metrics(all_scores, all_labels, classes)
    all_labels = torch.tensor([label for _, label in ordered])
    if (all_labels < 0).any():
        raise AdaptError(f"split '{split}' has no labels (the SSv2 test split is unlabelled); pass --split validation")
    return all_scores, all_labels, classification_metrics(all_scores, all_labels, classes)


def evaluate_run(run_path: Path, *, data: Path | None = None, split: str = "test", views: str | None = None,
                 skip_damaged: bool = False, scores_file: Path | None = None,
                 output: Output | None = None, weights: str = "selected", backbone: Path | None = None,
                 classes_by_index: bool = False, out: Path | None = None) -> EvalResult:
    """Evaluate a finished run with its ``weights`` (see :meth:`RunDir.weights_file`) and return the metrics,
    written to ``out``, else to the run's ``eval.json`` when ``data`` is the run's own (:func:`eval_record`).

    Before any work: the data's modality, task and classes are the run's (other class names only with
    ``classes_by_index``), the backbone file is present and unchanged (``backbone``: where it moved)."""
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.distributed import partial_state
    from adaptcli.runs.contract import check_data_contract
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = RunDir(Path(run_path))
    info = run.info()  # not a run folder: said before anything about its weights
    data_dir = Path(data or info.data_dir)
    reads = run.dependencies(run.config()) | {data_dir.resolve()}
    if backbone is not None:
        reads.add(Path(backbone).resolve())
    for option, target in (("--scores", scores_file), ("--out", out)):
        if target is not None:
            check_output_file(target, reads, option)
    if scores_file is not None and out is not None and Path(scores_file).resolve() == Path(out).resolve():
        raise AdaptError(f"--out {out} is also the --scores file; name two files")
    manifest = read_manifest(data_dir)
    check_data_contract(manifest, data_dir, "the run", classes=info.classes,
                        num_classes=info.num_classes, task=info.task, modality=info.modality,
                        classes_by_index=classes_by_index)
    check_scored_split(split, manifest, data_dir)
    record = eval_record(run, data_dir, out)
    loaded = load_run_model(run, weights=run.weights_file(weights), output=output, backbone=backbone)
    session = Session.for_evaluation(loaded.config, data_dir, loaded.model, loaded.info.num_classes, loaded.adapt,
                                     output)
    result = evaluate_loaded(session, split, views, skip_damaged=skip_damaged, scores_file=scores_file)
    result.run = str(run.path)
    if partial_state().is_main_process and record is not None:
        result.write(record)
        if out is not None:
            record_file(Path(out))
    return result


def eval_record(run: RunDir, data_dir: Path, out: Path | None = None) -> Path | None:
    """Where an evaluation of ``run`` (a :class:`~adaptcli.runs.folder.RunDir`) on ``data_dir`` is written:
    ``out`` when given, else the run's ``eval.json`` for the run's own data
    (:func:`~adaptcli.runs.contract.is_run_data`), else nowhere: a score on other data never stands in
    the run's record (a model card reads it as the run's result)."""
    from adaptcli.runs.contract import is_run_data

    if out is not None:
        return Path(out)
    return run.eval_file if is_run_data(run.info(), data_dir) else None


def check_output_file(path: Path, reads: set[Path], option: str = "--scores") -> None:
    """A file an evaluation writes (``--scores``, ``--out``) never replaces (or lies in) what it reads: the
    run's files, its data, its weights; an existing file only when adaptcli wrote it."""
    target = Path(path).resolve()
    if target in reads or any(folder in target.parents for folder in reads if folder.is_dir()):
        raise AdaptError(f"{option} {path} would replace a file the evaluation reads (the run's own files, "
                         "its data or weights); choose another name")
    if target.is_dir():
        raise AdaptError(f"{option} {path} is a folder; name the file to write, such as "
                         f"{Path(path) / ('scores.safetensors' if option == '--scores' else 'eval.json')}")
    claim_file(Path(path), option)


def check_scores_file(scores_file: Path, reads: set[Path]) -> None:
    """``--scores`` never writes over (or into) what the evaluation reads: the run's files, data, weights."""
    check_output_file(scores_file, reads, "--scores")


def evaluate_loaded(session: Session, split: str = "test", views: str | None = None,
                    scores_file: Path | None = None, *, skip_damaged: bool = False) -> EvalResult:
    """Metrics of a session's trained (or deployed) model on ``split`` of its data."""
    from adaptcli.data.manifest import MANIFEST_NAME
    from adaptcli.engine.device import build_accelerator
    from adaptcli.files import file_sha256

    config = session.config
    accelerator = build_accelerator(config)
    session.model = session.model.to(accelerator.device)
    view_pair = parse_views(views or config.eval.views)
    if session.manifest.modality == "image":
        view_pair = (1, 1)
    show = accelerator.is_main_process and session.output.bars
    result = evaluate_model(session, accelerator, split, views=view_pair, show=show,
                            scores_file=scores_file, skip_damaged=skip_damaged)
    result.data, result.method, result.backbone = str(session.shards.path), config.method, config.model.name
    result.data_fingerprint = file_sha256(session.shards.path / MANIFEST_NAME)
    return result


def evaluate_export(model: nn.Module, meta: dict[str, Any], data_dir: Path, *, split: str = "test",
                    views: str | None = None, skip_damaged: bool = False,
                    scores_file: Path | None = None, output: Output | None = None) -> EvalResult:
    """Metrics of a model loaded from an export file whose header (``read_header``) is ``meta``."""
    from adaptcli.config import header_config

    session = Session.for_evaluation(header_config(meta), Path(data_dir), model, int(meta["num_classes"]),
                                     output=output)
    return evaluate_loaded(session, split, views, scores_file=scores_file, skip_damaged=skip_damaged)


def check_export_data(meta: dict[str, Any], data_dir: Path, split: str, source: str,
                      classes_by_index: bool = False) -> None:
    """Before an export's weights are read: ``data_dir`` holds its kind of input, its task, its classes
    (other names only with ``classes_by_index``: :func:`~adaptcli.runs.contract.check_data_contract`), and
    has ``split`` (``meta``: the export's header; ``source`` names the export)."""
    from adaptcli.data.manifest import read_manifest
    from adaptcli.runs.contract import check_data_contract

    manifest = read_manifest(data_dir)
    check_data_contract(manifest, data_dir, source, classes=[str(c) for c in meta.get("classes") or []],
                        num_classes=int(meta["num_classes"]), task=meta.get("task"), modality=meta.get("modality"),
                        classes_by_index=classes_by_index)
    check_scored_split(split, manifest, data_dir)


def check_scored_split(split: str, manifest: Manifest, data_dir: Path) -> None:
    """``--split`` names a split of the data, by the split-name table (``val`` finds ``validation``), and
    that split has labels to score against: both known before any work."""
    from adaptcli.data.stream.labelled import check_split_labelled
    from adaptcli.data.stream.shards import ShardFolder

    found = resolve_split(split, manifest.splits)
    if found is None:
        raise AdaptError(f"split '{split}' is not in {data_dir} (has {', '.join(manifest.splits)}); pass --split NAME")
    check_split_labelled(ShardFolder(Path(data_dir), manifest), found)


def validate(session: Session, accelerator: Any, split: str) -> tuple[dict[str, float], float]:
    """A training epoch's validation: its record values (``val_top1``/``val_top5``, or ``val_mAP``) and
    the headline value the best epoch is chosen on. Compiled training evaluates eagerly (one compilation)."""
    import contextlib

    from adaptcli.engine.compile import eager

    with eager() if session.config.train.compile else contextlib.nullcontext():
        result = evaluate_model(session, accelerator, split, views=(1, 1), show=False, skip_damaged=True)
    values = {"val_mAP": result.mAP} if session.multi_label else {"val_top1": result.top1, "val_top5": result.top5}
    return values, result.headline


def validate_probes(session: Session, accelerator: Any, split: str, grid: nn.Module) -> list[tuple[dict[str, float], float]]:
    """:func:`validate` for every probe of a probe grid (``grid`` returns ``N x B x C`` logits), from one
    backbone pass per batch: each probe's (record values, headline value)."""
    from adaptcli.data.stream.evaluation import eval_loader
    from adaptcli.engine.device import pins_memory

    split = resolve_split(split, session.manifest.splits) or split
    loader = eval_loader(session.shards, split, session.spec, session.config.eval.batch_size, views=(1, 1),
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         workers=session.config.data.workers, skip_damaged=True,
                         pin_memory=pins_memory(accelerator.device))
    multi = session.multi_label
    scores: list[list[torch.Tensor]] = []
    labels, keys = [], []
    was_training = grid.training
    grid.eval()
    with torch.no_grad():
        for batch in loader:
            inputs = batch.inputs_on(accelerator.device)
            if inputs.ndim == 6:  # B x V x C x T x H x W, one view here
                inputs = inputs.flatten(0, 1)
            with accelerator.autocast():
                logits = grid(inputs)
            scores = scores or [[] for _ in logits]
            for probe, probe_logits in zip(scores, logits):
                probe.append(average_views(probe_logits, 1, multi).cpu())
            labels.append(batch.labels)
            keys.extend(batch.keys)
    grid.train(was_training)
    if not scores:
        raise AdaptError(f"split '{split}' of {session.shards.path} has no samples")
    results = []
    for probe in scores:
        seen, _ = _gather(accelerator, keys, torch.cat(probe), torch.cat(labels), {}, multi)
        _, _, metrics = _score(session, split, seen)
        result = EvalResult.from_dict({**metrics, "split": split})
        values = {"val_mAP": result.mAP} if multi else {"val_top1": result.top1, "val_top5": result.top5}
        results.append((values, result.headline))
    return results
