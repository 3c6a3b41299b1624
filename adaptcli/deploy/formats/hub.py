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

from dataclasses import dataclass
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
    from adaptcli.models.config import ModelConfig

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
#: ``train.precision`` as the run recorded it (summary.json), in words.
PRECISIONS = {"no": "float32", "bf16": "bfloat16 mixed precision", "fp16": "float16 mixed precision"}


@dataclass(frozen=True)
class BaseModel:
    """Where the backbone's weights came from: what the card names as the base model and its licence."""

    name: str  # the architecture (``vit_base_patch16_224``)
    source: str  # in words, for the card's text
    hub_id: str | None = None  # the Hub repository of timm's pretrained weights (the card's ``base_model``)
    license: str = "other"  # the Hub's licence identifier; other: adaptcli cannot know it


def base_model(model: "ModelConfig", backbone_sha256: str | None) -> BaseModel:
    """The base model of a run's ``model`` section and its source: timm's pretrained weights (their Hub
    repository and licence), a checkpoint file (its name and hash), or random initialisation."""
    sha = f"sha256 {backbone_sha256}" if backbone_sha256 else "hash not recorded"
    if model.checkpoint:
        return BaseModel(model.name, f"the checkpoint file `{Path(model.checkpoint).name}` ({sha})")
    if model.pretrained:
        cfg = _pretrained_cfg(model.name)
        hub_id = getattr(cfg, "hf_hub_id", None) or None
        where = f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else "timm's pretrained weights"
        return BaseModel(model.name, f"timm's pretrained weights, {where}", hub_id, getattr(cfg, "license", None) or "other")
    return BaseModel(model.name, f"random initialisation, no pre-trained weights (the run's backbone.safetensors, {sha})")


def _pretrained_cfg(name: str):  # -> timm PretrainedCfg | None
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name)
    except (RuntimeError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Scored:
    """The data a number came from: the dataset's kind, its folder's name (never its path) and the split."""

    dataset: str
    folder: str
    split: str

    @property
    def words(self) -> str:
        return f"{self.dataset} (folder `{self.folder}`), split {self.split}"


def scored_on(data: str | None, split: str | None, info: RunInfo | None) -> Scored:
    """What an evaluation ran on: the dataset named in ``data``'s dataset.json (the run's when unreadable)."""
    from adaptcli.files import read_json

    kind = info.dataset if info is not None else None
    folder = Path(data or (info.data if info is not None and info.data else "data"))
    try:
        kind = str(read_json(folder / "dataset.json").get("dataset") or kind)
    except (OSError, ValueError, AttributeError):
        pass
    return Scored(str(kind or folder.name), folder.name, split or "test")


def card_metadata(export: "Export", name: str) -> dict[str, Any]:
    """The model card's YAML block: what the Hub indexes."""
    meta = export.meta
    summary, evaluated, info = _run_records(export.run)
    task = "video-classification" if meta["modality"] == "video" else "image-classification"
    trained_on = scored_on(trained_on_data(info, summary), None, info)
    key = headline_metric(any(r is not None and r.metric == "mAP" for r in (summary, evaluated)))
    metric = HUB_METRICS[key]
    base = base_model(export.config.model, info.backbone_sha256 if info else None)
    block: dict[str, Any] = {
        "library_name": "timm",
        "license": base.license,
        "pipeline_tag": task,
        "tags": [task, "adaptcli", str(meta["method"]), "parameter-efficient-fine-tuning", str(meta["backbone"])],
        "datasets": [trained_on.dataset],
        "metrics": [metric],
    }
    if base.hub_id:
        block["base_model"] = base.hub_id
    if evaluated is not None and getattr(evaluated, key) is not None:
        where = scored_on(evaluated.data, evaluated.split, info)
        result = {"type": metric, "value": float(getattr(evaluated, key)),
                  "name": f"{key} ({where.split}, {evaluated.views or '1x1'} views)"}
        block["model-index"] = [{"name": name, "results": [{
            "task": {"type": task},
            "dataset": {"name": f"{where.dataset} ({where.folder})", "type": where.dataset, "split": where.split},
            "metrics": [result]}]}]
    return block


def card_text(export: "Export", name: str) -> str:
    """README.md: the metadata block, then what the model is, its results, its training and its use."""
    meta, config = export.meta, export.config
    summary, evaluated, info = _run_records(export.run)
    base = base_model(export.config.model, info.backbone_sha256 if info else None)
    trained_on = scored_on(trained_on_data(info, summary), config.data.train_split, info)
    lines = ["---", yaml.safe_dump(card_metadata(export, name), sort_keys=False).rstrip("\n"), "---", "",
             f"# {name}", "",
             f"`{meta['backbone']}` adapted to {meta['num_classes']} classes with **{meta['method']}** by "
             f"[adaptcli](https://pypi.org/project/adaptcli/) {meta['adaptcli_version']} "
             f"({meta['modality']}, input {meta['input_size'][1]} px"
             + (f", {meta['num_frames']} frames" if "num_frames" in meta else "") + ").", "",
             f"- base model: `{base.name}`, weights from {base.source}",
             f"- licence: `{base.license}`" + ("" if base.license != "other" else
                                               " (adaptcli cannot know the licence of these weights and data: "
                                               "set `license:` above before publishing)"),
             f"- trained on: {trained_on.words}", ""]
    lines += ["## Results", ""]
    if evaluated is not None:
        where = scored_on(evaluated.data, evaluated.split, info)
        shown = {k: getattr(evaluated, k) for k in ("views", "samples", "top1", "top5", "mean_class_acc", "mAP")
                 if getattr(evaluated, k) is not None}
        lines += [f"On {where.words}:", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in shown.values()) + " |", ""]
    else:
        lines += ["Not evaluated yet (`adaptcli eval --run RUN` writes eval.json).", ""]
    lines += ["## Training", ""]
    if summary is not None:
        lines += [f"- trainable parameters: {summary.trainable_params} "
                  f"({summary.trainable_percent}% of the backbone)",
                  f"- {summary.epochs} epochs, {summary.steps} steps, final loss {summary.final_loss}",
                  f"- selected: {summary.selected}"]
        if summary.best_val is not None and config.data.val_split:
            validation = scored_on(trained_on_data(info, summary), config.data.val_split, info)
            lines.append(f"- best validation {summary.metric} {summary.best_val:.2f} at epoch {summary.best_epoch}, "
                         f"on {validation.words}")
    precision = PRECISIONS.get(str(summary.precision), str(summary.precision)) if summary and summary.precision else \
        f"{config.train.precision} (not recorded)"
    lines += [f"- recipe settings: lr {config.train.lr}, batch {config.train.batch_size}, epochs {config.train.epochs}, "
              f"optimizer {config.train.optimizer}",
              f"- precision: {precision}",
              f"- classes: {', '.join(map(str, meta['classes'][:20]))}" + (", ..." if len(meta["classes"]) > 20 else ""),
              "", "## Use", "", "```python", "import timm"]
    if export.mode is ExportMode.FULL or not timm_format.timm_knows(str(meta["backbone"])):
        lines.append("import adaptcli  # registers the architecture this folder names")
    lines += ['model = timm.create_model("hf-hub:USER/NAME", pretrained=True).eval()', "```", ""]
    return "\n".join(lines) + "\n"


def trained_on_data(info: RunInfo | None, summary: TrainSummary | None) -> str | None:
    """The shard folder the run trained on (run.json, else summary.json)."""
    return (info.data if info is not None else None) or (summary.data if summary is not None else None)


def write(export: "Export", out: Path) -> Written:
    """The timm folder (checked by loading it with timm) and its model card, renamed into place together
    (adapter-only: :mod:`adaptcli.deploy.formats.hub_adapter`'s folder)."""
    from adaptcli.io import atomic_path, write_text

    if export.mode is ExportMode.ADAPTER_ONLY:
        return hub_adapter.write(export, out, CARD, card_metadata(export, out.name), card_text(export, out.name))
    with atomic_path(out) as tmp:
        written = timm_format.write(export, tmp)
        write_text(tmp / CARD, card_text(export, out.name))
    return Written(tensors=written.tensors, max_abs_diff=written.max_abs_diff, limit=written.limit,
                   check=written.check,
                   use=(timm_format.use_line(export, out), f"model card: {out / CARD}",
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
