"""A Hugging Face Hub model folder: the timm folder (``config.json`` + ``model.safetensors``) plus a model
card, ``README.md``, whose metadata block is what the Hub reads (library, tags, datasets, metrics and
the results as ``model-index``) and whose text says what was trained, how, and how to load it.

``export --format hub --push REPO`` uploads the folder with ``huggingface_hub`` afterwards
(:func:`push_folder`); without a network that is one line, and the folder stays written. It is read back
(``predict``, ``eval --export``, ``adaptcli.load``) as the timm folder it holds; ``--adapter-only`` writes
:mod:`adaptcli.deploy.formats.hub_adapter`'s folder instead. ``hf-hub:USER/NAME`` reads either from the Hub
(:mod:`adaptcli.deploy.hub_source`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from adaptcli.deploy.formats import ExportFormat, Written, register
from adaptcli.deploy.formats import hub_adapter, peft as peft_format
from adaptcli.deploy.formats import timm as timm_format
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError
from adaptcli.runs.info import RunInfo
from adaptcli.runs.results import EvalResult, TrainSummary, headline_metric

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

CARD = "README.md"


def _run_records(run: Path | None) -> tuple[TrainSummary | None, EvalResult | None, RunInfo | None]:
    """The run's summary, evaluation (on its own data only) and run.json, each None when missing or unreadable."""
    from adaptcli.runs.contract import scored_on_run_data
    from adaptcli.runs.folder import RunDir

    found: list[Any] = []
    folder = RunDir(run) if run is not None else None
    for read in (lambda f: TrainSummary.read(f.summary_file), lambda f: EvalResult.read(f.eval_file),
                 lambda f: f.stored_info()):
        try:
            found.append(read(folder) if folder is not None else None)
        except (OSError, ValueError, TypeError):
            found.append(None)
    summary, evaluated, info = found
    if evaluated is not None and (info is None or not scored_on_run_data(evaluated, info)):
        evaluated = None  # a score on other data is never published under the run's dataset name
    return summary, evaluated, info


#: The Hub's name of each headline metric.
HUB_METRICS = {"top1": "accuracy", "mAP": "map"}


def card_metadata(export: "Export", name: str) -> dict[str, Any]:
    """The model card's YAML block: what the Hub indexes."""
    meta = export.meta
    summary, evaluated, info = _run_records(export.run)
    task = "video-classification" if meta["modality"] == "video" else "image-classification"
    dataset = str((info.dataset if info else None) or Path(str((summary.data if summary else None) or "data")).name)
    key = headline_metric(any(r is not None and r.metric == "mAP" for r in (summary, evaluated)))
    metric = HUB_METRICS[key]
    results = []
    if evaluated is not None and getattr(evaluated, key) is not None:
        results.append({"type": metric, "value": float(getattr(evaluated, key)),
                        "name": f"{key} ({evaluated.split or 'test'}, {evaluated.views or '1x1'} views)"})
    block: dict[str, Any] = {
        "library_name": "timm",
        "pipeline_tag": task,
        "tags": [task, "adaptcli", str(meta["method"]), "parameter-efficient-fine-tuning", str(meta["backbone"])],
        "datasets": [dataset],
        "metrics": [metric],
    }
    if results:
        block["model-index"] = [{"name": name, "results": [{"task": {"type": task}, "dataset": {"name": dataset, "type": dataset},
                                                           "metrics": results}]}]
    return block


def card_text(export: "Export", name: str) -> str:
    """README.md: the metadata block, then what the model is, its results, its training and its use."""
    meta, config = export.meta, export.config
    summary, evaluated, _ = _run_records(export.run)
    lines = ["---", yaml.safe_dump(card_metadata(export, name), sort_keys=False).rstrip("\n"), "---", "",
             f"# {name}", "",
             f"`{meta['backbone']}` adapted to {meta['num_classes']} classes with **{meta['method']}** by "
             f"[adaptcli](https://pypi.org/project/adaptcli/) {meta['adaptcli_version']} "
             f"({meta['modality']}, input {meta['input_size'][1]} px"
             + (f", {meta['num_frames']} frames" if "num_frames" in meta else "") + ").", ""]
    lines += ["## Results", ""]
    if evaluated is not None:
        shown = {k: getattr(evaluated, k) for k in ("split", "views", "samples", "top1", "top5", "mean_class_acc", "mAP")
                 if getattr(evaluated, k) is not None}
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in shown.values()) + " |", ""]
    else:
        lines += ["Not evaluated yet (`adaptcli eval --run RUN` writes eval.json).", ""]
    lines += ["## Training", ""]
    if summary is not None:
        lines += [f"- trainable parameters: {summary.trainable_params} "
                  f"({summary.trainable_percent}% of the backbone)",
                  f"- {summary.epochs} epochs, {summary.steps} steps, final loss {summary.final_loss}",
                  f"- selected: {summary.selected}"]
    lines += [f"- recipe settings: lr {config.train.lr}, batch {config.train.batch_size}, epochs {config.train.epochs}, "
              f"optimizer {config.train.optimizer}, precision {config.train.precision}",
              f"- classes: {', '.join(map(str, meta['classes'][:20]))}" + (", ..." if len(meta["classes"]) > 20 else ""),
              "", "## Use", "", "```python", "import timm"]
    if export.mode is ExportMode.FULL or config.model.name.startswith(("video_", "swin3d")):
        lines.append("import adaptcli  # registers the architecture this folder names")
    lines += ['model = timm.create_model("hf-hub:USER/NAME", pretrained=True).eval()', "```", ""]
    return "\n".join(lines) + "\n"


def write(export: "Export", out: Path) -> Written:
    """The timm folder (checked by loading it with timm) and its model card, renamed into place together
    (adapter-only: :mod:`adaptcli.deploy.formats.hub_adapter`'s folder)."""
    from adaptcli.io import atomic_path, write_text

    if export.mode is ExportMode.ADAPTER_ONLY:
        return hub_adapter.write(export, out, CARD, card_metadata(export, out.name), card_text(export, out.name))
    with atomic_path(out) as tmp:
        written = timm_format.write(export, tmp)
        write_text(tmp / CARD, card_text(export, out.name))
    return Written(tensors=written.tensors, max_abs_diff=written.max_abs_diff, check=written.check,
                   use=(f"model card: {out / CARD}",
                        f"publish: adaptcli export ... --format hub --push USER/NAME, or huggingface-cli upload USER/NAME {out}"))


def push_folder(folder: Path, repo: str) -> str:
    """Upload ``folder`` to the Hub model repository ``repo`` (created if missing); its URL. One line when
    the Hub cannot be reached or refuses (no network, offline mode, no token)."""
    from adaptcli.deploy.hub_source import offline

    if offline():  # known before any request: say so, not as a network failure
        raise AdaptError(f"--push {repo}: the Hugging Face Hub is switched off here (HF_HUB_OFFLINE is set), so "
                         f"nothing was uploaded; the folder is written at {folder}: push it where the Hub can be "
                         f"reached (HF_HUB_OFFLINE unset) with huggingface-cli upload {repo} {folder}")
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model")
    except Exception as exc:  # noqa: BLE001 - the hub raises network, auth and offline errors of many types
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise AdaptError(f"--push {repo}: the Hugging Face Hub could not be reached or refused ({type(exc).__name__}: "
                         f"{first}); the folder is written at {folder}: push it later with "
                         f"huggingface-cli upload {repo} {folder}") from None
    return f"https://huggingface.co/{repo}"


register(ExportFormat(
    name="hub",
    summary="the timm folder plus a model card (README.md: the Hub's metadata, the run's results), or with "
            "--adapter-only the adapter, its backbone's name and hash and a card; --push REPO uploads it",
    modes=(ExportMode.MERGE, ExportMode.FULL, ExportMode.ADAPTER_ONLY),
    write=write,
    open=hub_adapter.open_folder,  # the adapter-only folder; a merged or full one is read as the timm folder it holds
    owns=hub_adapter.owns,
    marker=(timm_format.MARKER, hub_adapter.MARKER),  # type: ignore[arg-type]  (either marks a hub folder)
    entries=(timm_format.CONFIG, timm_format.WEIGHTS, CARD, hub_adapter.WEIGHTS, peft_format.CONFIG, peft_format.WEIGHTS),
))
