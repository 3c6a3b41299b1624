"""Full fine-tuning (every weight trains): the baseline every method is compared with."""

from __future__ import annotations

from adaptcli.methods.registry import MethodSpec, NoOptions, register

register(MethodSpec(
    name="full",
    summary="full fine-tuning, every weight trains",
    options=NoOptions,
    implementation="adaptcli.methods.full.method:Full",
    order=50,
    mergeable=True,
    trains_backbone=True,
))
