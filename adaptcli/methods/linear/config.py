"""Linear probing (MAE protocol: BatchNorm without affine, then Linear) and its registration."""

from __future__ import annotations

from adaptcli.methods.registry import MethodSpec, NoOptions, register

register(MethodSpec(
    name="linear",
    summary="linear probe on frozen features (mergeable)",
    options=NoOptions,
    implementation="adaptcli.methods.linear.method:Linear",
    order=40,
    mergeable=True,
    feature_cache=True,
))
