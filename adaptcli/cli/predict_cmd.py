"""``adaptcli predict``: labels for raw images and videos from a run or an export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors
from adaptcli.errors import AdaptError

PANEL = "Deployment"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def predict(
        model: Annotated[Path, typer.Argument(help="A run folder, a .safetensors export (merged, full or adapter-only), a timm, hub or peft folder, an .onnx file, or hf-hub:USER/NAME (a hub folder on the Hugging Face Hub, read through its local cache).")],
        paths: Annotated[list[Path], typer.Argument(help="Images, videos, folders of them (searched recursively) or .txt lists of paths.")],
        backbone: Annotated[Optional[Path], typer.Option("--backbone", help="The backbone weights an adapter-only export (a .safetensors file, a peft or adapter-only hub folder) attaches to (a hub folder checks it against the SHA-256 it records); for a run folder, where its backbone file moved (the same file: run.json records its SHA-256).")] = None,
        top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000, help="How many classes to show per file.")] = 5,
        out: Annotated[Optional[Path], typer.Option("--out", help="Also write the predictions: .csv (one row per file and rank) or .jsonl (one object per file).")] = None,
        device: Annotated[str, typer.Option("--device", help="cpu or cuda (ONNX files run on the CPU).")] = "cpu",
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=4096, help="Images per forward pass.")] = 16,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    ) -> None:
        """Predict the classes of raw images and videos with the run's evaluation transform (videos: its
        eval.views clips x crops, averaged). Unreadable files are listed and skipped; a path that does not
        exist, or no file predicted, is an error (exit 2).

        Example: adaptcli predict runs/dtd-arc photos/ --top-k 3 --out predictions.csv
        """
        from tqdm import tqdm

        from adaptcli.deploy.predict import Prediction, input_files, open_predictor, predict_files, top_k as best

        if out is not None:
            if out.suffix not in (".csv", ".jsonl"):
                raise AdaptError(f"--out {out}: name a .csv or .jsonl file")
            from adaptcli.ownership import claim_file

            claim_file(out, "--out")
        if device not in ("cpu", "cuda"):
            raise AdaptError(f"--device {device}: choose cpu or cuda")
        files, skipped = input_files(paths)
        if not files:
            from adaptcli.deploy.predict import IMAGE_SUFFIXES, VIDEO_SUFFIXES

            kinds = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise AdaptError(f"no image or video file ({kinds}) in {', '.join(map(str, paths))}; pass files, "
                             "folders of them or .txt lists of paths")
        predictor = open_predictor(model, backbone=backbone, device=device)
        rows: list[tuple[str, list[tuple[str, int, float]]]] = []
        with tqdm(total=len(files), desc="predicting", unit="file", disable=not progress, leave=False) as bar:
            for result in predict_files(predictor, files, batch_size=batch_size, progress=bar.update):
                if isinstance(result, Prediction):
                    rows.append((result.path, best(result, predictor.classes, top_k)))
                else:
                    skipped.append(result)
        if not rows:  # zero work is not success: nothing printed or written as if it were
            path, why = skipped[0]
            raise AdaptError(f"none of the {len(skipped)} file(s) given could be predicted (first: {path}: {why}); "
                             "pass readable images or videos of the kind the model takes")
        for path, ranked in rows:
            typer.echo(f"{path}\t" + "\t".join(f"{name} {score:.3f}" for name, _, score in ranked))
        if out is not None:
            _write(out, rows)
        typer.echo(f"predicted {len(rows)} file(s) with {predictor.source}" + (f"; wrote {out}" if out else ""))
        if skipped:
            shown = "; ".join(f"{p} ({why})" for p, why in skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
            typer.echo(f"warning: skipped {len(skipped)} file(s): {shown}", err=True)


def _write(out: Path, rows: list[tuple[str, list[tuple[str, int, float]]]]) -> None:
    from adaptcli.io import write_text
    from adaptcli.ownership import record_file

    if out.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "rank", "class", "index", "score"])
        for path, ranked in rows:
            for rank, (name, index, score) in enumerate(ranked, 1):
                writer.writerow([path, rank, name, index, f"{score:.6f}"])
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps({"path": path, "top": [{"class": n, "index": i, "score": round(s, 6)}
                                                          for n, i, s in ranked]}) + "\n" for path, ranked in rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    record_file(out)
