"""BitFit (Zaken et al., ACL 2022): only the backbone's biases train. Options and registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class BitFitOptions:
    """The baselines' rule: every backbone tensor named *bias*, plus the classifier."""

    fc_norm: Literal["bias", "all"] = "bias"
    """On a mean-pooling backbone (``fc_norm`` after the pooling: MAE, VideoMAE): bias trains only
    ``fc_norm.bias``, as the rule does (KMnP/vpt src/models/vit_models.py, SSLViT ``tinytl-bias``); all
    trains its weight too, as every other method's head does."""


register(MethodSpec(
    name="bitfit",
    summary="every backbone tensor named *bias* trains, Swin's relative position bias too (mergeable)",
    options=BitFitOptions,
    implementation="adaptcli.methods.bitfit.method:BitFit",
    order=32,
    mergeable=True,
))
