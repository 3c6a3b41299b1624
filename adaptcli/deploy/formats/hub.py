"""A Hugging Face Hub model folder: the timm folder (``config.json`` + ``model.safetensors``) plus a model
card, ``README.md``, whose metadata block is what the Hub reads (library, tags, datasets, metrics and
the results as ``model-index``) and whose text says what was trained, how, and how to load it.

``export --format hub --push REPO`` uploads the folder with ``huggingface_hub`` afterwards
(:func:`push_folder`); without a network that is one line, and the folder stays written. It is read back
(``predict``, ``eval --export``, ``adaptcli.load``) as the timm folder it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from adaptcli.deploy.formats import ExportFormat, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

CARD = "README.md"


def _results(run: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's summary.json and eval.json (empty when missing or unreadable)."""
    summary, evaluated, _ = _run_files(run)
    return summary, evaluated


def _run_files(run: Path | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run's summary.json, eval.json and run.json (each empty when missing or unreadable)."""
    from adaptcli.files import read_json

    found = []
    for name in ("summary.json", "eval.json", "run.json"):
        try:
            data = read_json(run / name) if run is not None else {}
        except (OSError, ValueError):
            data = {}
        found.append(data if isinstance(data, dict) else {})
    return found[0], found[1], found[2]


def card_metadata(export: "Export", name: str) -> dict[str, Any]:
    """The model card's YAML block: what the Hub indexes."""
    meta = export.meta
    summary, evaluated, info = _run_files(export.run)
    task = "video-classification" if meta["modality"] == "video" else "image-classification"
    dataset = str(info.get("dataset") or Path(str(summary.get("data") or "data")).name)
    multi = summary.get("task") == "multi-label" or evaluated.get("task") == "multi-label"
    metric, key = ("map", "mAP") if multi else ("accuracy", "top1")
    results = []
    if evaluated.get(key) is not None:
        results.append({"type": metric, "value": float(evaluated[key]),
                        "name": f"{key} ({evaluated.get('split', 'test')}, {evaluated.get('views', '1x1')} views)"})
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
    summary, evaluated = _results(export.run)
    lines = ["---", yaml.safe_dump(card_metadata(export, name), sort_keys=False).rstrip("\n"), "---", "",
             f"# {name}", "",
             f"`{meta['backbone']}` adapted to {meta['num_classes']} classes with **{meta['method']}** by "
             f"[adaptcli](https://pypi.org/project/adaptcli/) {meta['adaptcli_version']} "
             f"({meta['modality']}, input {meta['input_size'][1]} px"
             + (f", {meta['num_frames']} frames" if "num_frames" in meta else "") + ").", ""]
    lines += ["## Results", ""]
    if evaluated:
        shown = {k: evaluated[k] for k in ("split", "views", "samples", "top1", "top5", "mean_class_acc", "mAP")
                 if evaluated.get(k) is not None}
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in shown.values()) + " |", ""]
    else:
        lines += ["Not evaluated yet (`adaptcli eval --run RUN` writes eval.json).", ""]
    lines += ["## Training", ""]
    if summary:
        lines += [f"- trainable parameters: {summary.get('trainable_params')} "
                  f"({summary.get('trainable_percent')}% of the backbone)",
                  f"- {summary.get('epochs')} epochs, {summary.get('steps')} steps, final loss {summary.get('final_loss')}",
                  f"- selected: {summary.get('selected')}"]
    lines += [f"- recipe settings: lr {config.train.lr}, batch {config.train.batch_size}, epochs {config.train.epochs}, "
              f"optimizer {config.train.optimizer}, precision {config.train.precision}",
              f"- classes: {', '.join(map(str, meta['classes'][:20]))}" + (", ..." if len(meta["classes"]) > 20 else ""),
              "", "## Use", "", "```python", "import timm"]
    if export.mode is ExportMode.FULL or config.model.name.startswith(("video_", "swin3d")):
        lines.append("import adaptcli  # registers the architecture this folder names")
    lines += ['model = timm.create_model("hf-hub:USER/NAME", pretrained=True).eval()', "```", ""]
    return "\n".join(lines) + "\n"


def wrote_folder(path: Path) -> bool:
    """A folder this format wrote: the timm folder's two files and the card, nothing else."""
    from adaptcli.deploy.formats.timm import CONFIG, WEIGHTS
    from adaptcli.files import read_json

    if not path.is_dir() or path.is_symlink() or {p.name for p in path.iterdir()} != {CONFIG, WEIGHTS, CARD}:
        return False
    try:
        return "adaptcli" in read_json(path / CONFIG)
    except (OSError, ValueError):
        return False


def write(export: "Export", out: Path) -> Written:
    """The timm folder (checked by loading it with timm) and its model card, renamed into place together."""
    from adaptcli.deploy.formats import timm as timm_format
    from adaptcli.io import atomic_path, write_text

    with atomic_path(out) as tmp:
        written = timm_format.write(export, tmp)
        write_text(tmp / CARD, card_text(export, out.name))
    return Written(tensors=written.tensors, max_abs_diff=written.max_abs_diff, check=written.check,
                   use=(f"model card: {out / CARD}",
                        f"publish: adaptcli export ... --format hub --push USER/NAME, or huggingface-cli upload USER/NAME {out}"))


def push_folder(folder: Path, repo: str) -> str:
    """Upload ``folder`` to the Hub model repository ``repo`` (created if missing); its URL. One line when
    the Hub cannot be reached or refuses (no network, offline mode, no token)."""
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
    summary="the timm folder plus a model card (README.md with the Hub's metadata and the run's results); --push REPO uploads it",
    modes=(ExportMode.MERGE, ExportMode.FULL),
    write=write,
    wrote=wrote_folder,
))
