"""``export --format timm``: folders that ``timm.create_model("local-dir:DIR", pretrained=True)`` loads
in a fresh process with no adaptcli code (image) or after ``import adaptcli`` (video)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.export.conftest import invoke

VIDEO = ["--model", "video_vit_test", "--set", "model.num_frames=4"]
ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: imports only what PRELUDE says, loads the folder, writes the logits.
LOADER = """
import json, sys
{prelude}
import timm
from safetensors.torch import load_file, save_file
folder, inputs, out = sys.argv[1:4]
model = timm.create_model("local-dir:" + folder, pretrained=True).eval()
with torch.no_grad():
    logits = model(load_file(inputs)["x"])
save_file({{"logits": logits.contiguous()}}, out + ".safetensors")
json.dump({{"label_names": model.pretrained_cfg.get("label_names"),
           "input_size": list(model.pretrained_cfg["input_size"]),
           "mean": list(model.pretrained_cfg["mean"]),
           "adaptcli_modules": sorted(m for m in sys.modules if m.split(".")[0] == "adaptcli")}},
          open(out + ".json", "w"))
"""


def load_in_fresh_process(folder: Path, inputs: torch.Tensor, tmp_path: Path, prelude: str) -> tuple[torch.Tensor, dict]:
    save_file({"x": inputs.contiguous()}, str(tmp_path / "inputs.safetensors"))
    script = LOADER.format(prelude="import torch\n" + prelude)
    out = tmp_path / "loaded"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "inputs.safetensors"), str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(f"{out}.safetensors")["logits"], json.loads(Path(f"{out}.json").read_text())


def run_logits(run: Path, inputs: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    loaded = load_run_model(RunDir(run))
    model, info = loaded.model, loaded.info
    with torch.no_grad():
        return model.eval()(inputs), list(info.classes)


def export_folder(run: Path, mode: str, out: Path) -> str:
    result = invoke("export", "--run", run, f"--{mode}", "--format", "timm", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    return result.output


def test_merged_arc_loads_with_plain_timm_in_a_fresh_process(runs, tmp_path):
    run = runs.get("arc")
    output = export_folder(run, "merge", tmp_path / "arc-timm")
    assert "timm.create_model check: max |difference|" in output and "import adaptcli" not in output
    config = json.loads((tmp_path / "arc-timm" / "config.json").read_text())
    assert config["architecture"] == "test_vit" and config["pretrained_cfg"]["input_size"] == [3, 32, 32]

    inputs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits, seen = load_in_fresh_process(tmp_path / "arc-timm", inputs, tmp_path, prelude="")
    expected, classes = run_logits(run, inputs)
    assert seen["adaptcli_modules"] == []  # plain timm did it all
    assert (logits - expected).abs().max() <= 1e-5
    assert seen["label_names"] == classes and len(classes) == logits.shape[1] == 3
    assert seen["input_size"] == [3, 32, 32]


def test_full_adaptformer_video_loads_with_timm_after_import_adaptcli(runs, tmp_path):
    run = runs.get("adaptformer", "motion", *VIDEO)
    output = export_folder(run, "full", tmp_path / "af-timm")
    assert "use: import adaptcli, timm; model = timm.create_model" in output
    config = json.loads((tmp_path / "af-timm" / "config.json").read_text())
    assert config["architecture"] == "adaptcli_adapted"
    assert config["model_args"]["run_config"]["method"]["name"] == "adaptformer"

    inputs = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    logits, seen = load_in_fresh_process(tmp_path / "af-timm", inputs, tmp_path, prelude="import adaptcli")
    expected, classes = run_logits(run, inputs)
    assert (logits - expected).abs().max() <= 1e-5
    assert seen["label_names"] == classes and len(classes) == logits.shape[1] == 2


def test_merged_video_arc_loads_after_import_adaptcli(runs, tmp_path):
    run = runs.get("arc", "motion", *VIDEO)
    export_folder(run, "merge", tmp_path / "video-arc")
    inputs = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    logits, seen = load_in_fresh_process(tmp_path / "video-arc", inputs, tmp_path, prelude="import adaptcli")
    expected, classes = run_logits(run, inputs)
    assert (logits - expected).abs().max() <= 1e-5 and seen["label_names"] == classes


def test_timm_folder_refuses_adapter_only_and_a_non_mergeable_merge(runs, tmp_path):
    result = invoke("export", "--run", runs.get("arc"), "--adapter-only", "--format", "timm", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "timm format holds merge, full exports, not adapter-only" in result.output
    assert not (tmp_path / "x").exists()
    result = invoke("export", "--run", runs.get("adaptformer"), "--merge", "--format", "timm", "--out", tmp_path / "y")
    assert result.exit_code == 2 and "--full" in result.output and not (tmp_path / "y").exists()


def test_import_adaptcli_registers_with_timm_in_either_order():
    check = "print(timm.is_model('video_vit_test'), timm.is_model('adaptcli_adapted'))"
    for code in (f"import adaptcli, sys; assert 'torch' not in sys.modules; import timm; {check}",
                 f"import timm, adaptcli; {check}",
                 f"import adaptcli.deploy.timm_arch, timm; {check}",
                 # an adaptcli module that imports timm itself, half-imported when the hook runs
                 f"import adaptcli.methods.arc.method, timm; {check}"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0 and done.stdout.split() == ["True", "True"], (code, done.stderr[-2000:])
    done = subprocess.run([sys.executable, "-c", "import timm; print(timm.is_model('video_vit_test'))"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split() == ["False"]  # plain timm does not know them: the registration is adaptcli's
