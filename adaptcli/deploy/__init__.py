"""Deployment: export a run (merged, full, adapter-only) and load the result in one call.

    export_run(run, "model.safetensors", "merge")     # plain backbone weights, method folded in
    model = load("model.safetensors")                   # ready nn.Module in eval mode
    model = load("task.safetensors", backbone="vit.safetensors")
    switcher = AdapterSwitcher("vit.safetensors")       # one backbone, many adapter files
"""

from adaptcli.deploy.adapter import AdapterSwitcher, attach_adapter
from adaptcli.deploy.export import export_run
from adaptcli.deploy.header import read_header
from adaptcli.deploy.load import load

__all__ = ["AdapterSwitcher", "attach_adapter", "export_run", "load", "read_header"]
