"""Forward FLOPs of a backbone, the adapted model and its merge, counted on the meta device (nothing runs)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward (torch's ``FlopCounterMode``: 2 per multiply-add of matmuls and convolutions,
    attention included; element-wise work and memory moves, such as a temporal shift, count 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    # A view of a trainable parameter (the attentive probe's expanded query) still requires grad under no_grad,
    # and the counter's module tracker then asks it for a gradient function it lacks: count on frozen parameters.
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for param in trainable:
            param.requires_grad_(False)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        for param in trainable:
            param.requires_grad_(True)
    return int(counter.get_total_flops())


def flop_report(config: RunConfig, num_classes: int) -> dict[str, Any]:
    """FLOPs per input (one image, or one clip of ``model.num_frames`` frames): the plain backbone (on every
    frame, where a method runs an image model on frames), the adapted model as it trains, and the merged
    model (None where the method does not merge), with ``merged_extra`` = merged - backbone; where the model
    keeps a ``temporal_embedding`` table (ZeroI2V's option), ``temporal_embedding_additions``: the element-wise
    additions it costs per clip (tokens x frames x D), which FlopCounterMode does not count."""
    from adaptcli.methods.apply import apply_method, merge_method
    from adaptcli.models.build import shape_only_backbone
    from adaptcli.runs.build import is_video_model

    plain = shape_only_backbone(config.model, num_classes).eval()
    adapted = shape_only_backbone(config.model, num_classes)
    with torch.device("meta"):  # the method's own modules too
        try:
            info = apply_method(adapted, config.method, config.method_options, head_norm=config.head.norm,
                                num_frames=config.model.num_frames)
        except NotImplementedError:  # peft's SHiRA picks its entries from tensor values
            raise AdaptError(f"--flops counts on the meta device, where {config.method}'s injection cannot run (it "
                             "reads tensor values); count the parameters without --flops") from None
    adapted.eval()
    size, frames = config.model.img_size, config.model.num_frames
    video = is_video_model(adapted)
    x = torch.empty((1, 3, frames, size, size) if video else (1, 3, size, size), device="meta")
    plain_input = x if is_video_model(plain) or not video else x.transpose(1, 2).flatten(0, 1)
    backbone = forward_flops(plain, plain_input)
    merged = None
    if info.mergeable:
        try:
            merged = forward_flops(merge_method(copy.deepcopy(adapted), info), x)
        except (AdaptError, NotImplementedError, RuntimeError):  # a merge that reads tensor values
            merged = None
    report = {
        "input": " x ".join(str(n) for n in x.shape),
        "backbone": backbone,
        "adapted": forward_flops(adapted, x),
        "merged": merged,
        "merged_extra": None if merged is None else merged - backbone,
    }
    table = getattr(adapted, "temporal_embedding", None)
    if table is not None:  # element-wise, so 0 in FlopCounterMode's count: every token of every frame gets its row
        tokens = adapted.patch_embed.num_patches + getattr(adapted, "num_prefix_tokens", 0)
        report["temporal_embedding_additions"] = tokens * table.shape[1] * table.shape[2]
    return report
