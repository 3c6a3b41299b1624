"""Deployment: export a run (merged, full, adapter-only) and load the result in one call.

    export_run(run, "model.safetensors", "merge")     # plain backbone weights, method folded in
    model = load("model.safetensors")                   # ready nn.Module in eval mode
    header = read_header("model.safetensors")           # classes, input size, mean, std, ...
    model = load("task.safetensors", backbone="vit.safetensors")
    switcher = AdapterSwitcher("vit.safetensors")       # one backbone, many adapter files

Names are imported lazily, so the torch-free format registry (:mod:`.formats`) can be read
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AdapterSwitcher": "adaptcli.deploy.adapter",
    "attach_adapter": "adaptcli.deploy.adapter",
    "ExportMode": "adaptcli.deploy.modes",
    "ExportResult": "adaptcli.deploy.export",
    "export_run": "adaptcli.deploy.export",
    "load": "adaptcli.deploy.loading",
    "read_header": "adaptcli.deploy.header",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'adaptcli.deploy' has no attribute '{name}'")


__all__ = list(_WHERE)
