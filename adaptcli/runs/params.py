"""Parameter accounting for ``inspect-params`` and the run summaries."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output


def parameter_report(model: nn.Module, info: AdaptInfo, probes: int = 1) -> dict[str, Any]:
    """Exact counts for a model adapted as ``info`` says (see :func:`adaptcli.methods.apply_method`).

    backbone = every parameter that is neither the method's nor the classifier's; those of them that train
    (a ``fc_norm`` trained with the head) are also ``backbone_trained_params``, so trainable = method + head
    + backbone_trained;
    trainable_percent is relative to the backbone. Parts a method holds fixed (``info.fixed_elements``,
    the video ViT's key bias under BitFit) are not counted anywhere. ``probes``: a probe grid trains that
    many copies of everything trainable (the method's, the head's; ``probes`` is then in the report).
    """
    from adaptcli.models.blocks import classifier, qualified_name

    head_name = qualified_name(model, classifier(model))
    method_names = set(info.method_param_names)
    backbone = method = head = trainable = backbone_trained = 0
    where: dict[str, int] = defaultdict(int)
    for name, param in model.named_parameters():
        n = param.numel() - info.fixed_elements.get(name, 0)
        copies = probes if param.requires_grad else 1
        if name in method_names:
            method += n * copies
        elif name == head_name or name.startswith(head_name + "."):
            head += n * copies
        else:
            backbone += n
            if param.requires_grad:  # e.g. a fc_norm that trains with the head: counted in both
                backbone_trained += n * copies
        if param.requires_grad:
            trainable += n * copies
            where[_location(name)] += n * copies
    report = {
        "model": type(model).__name__,
        "method": info.method,
        "backbone_params": backbone,
        "method_params": method,
        "head_params": head,
        "trainable_params": trainable,
        "backbone_trained_params": backbone_trained,
        "trainable_percent": round(100.0 * trainable / backbone, 4) if backbone else 0.0,
        "mergeable": info.mergeable,
        "trainable_locations": dict(where),
    }
    if probes > 1:
        report["probes"] = probes
    return report


def _location(name: str) -> str:
    """Collapse a parameter name to where it sits: ``blocks.3.adaptmlp.up.weight`` -> ``blocks.*.adaptmlp``."""
    parts = name.split(".")[:-1]
    collapsed = ["*" if p.isdigit() else p for p in parts]
    if len(collapsed) > 4:
        collapsed = collapsed[:4]
    return ".".join(collapsed) or name


def inspect_report(config: RunConfig, num_classes: int, output: Output | None = None) -> dict[str, Any]:
    """Build ``config.model`` with random weights (or its checkpoint, whose load summary goes to
    ``output.warn``), adapt it, count."""
    from adaptcli.methods.apply import apply_method
    from adaptcli.models.build import shape_only_backbone
    from adaptcli.runs.build import build_backbone

    if config.model.checkpoint:
        model = build_backbone(config, num_classes, output=output)
    else:  # counting needs shapes only
        model = shape_only_backbone(config.model, num_classes)
    from adaptcli.methods.registry import probe_settings

    try:
        info = apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                            num_frames=config.model.num_frames)
    except NotImplementedError:  # a method whose injection reads tensor values (peft's SHiRA): random weights
        from adaptcli.models.build import create_backbone

        model = create_backbone(dataclasses.replace(config.model, pretrained=False), num_classes)
        info = apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                            num_frames=config.model.num_frames)
    probes = probe_settings(config.method, config.method_options, config.train.lr, config.train.weight_decay)
    report = parameter_report(model, info, probes=len(probes))
    report.update(backbone=config.model.name, num_classes=num_classes)
    return report
