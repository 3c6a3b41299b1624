"""SSF's registration (Lian et al., NeurIPS 2022: Scaling & Shifting your Features)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class SsfOptions:
    """Scale ~ N(1, init_std), shift ~ N(0, init_std), as in the paper's code. ``pooled_site``: on a
    mean-pooling backbone, ``official`` scales and shifts the pooled features before the frozen
    ``fc_norm`` (the paper's final site; not mergeable), ``fc_norm`` trains ``fc_norm`` instead (mergeable)."""

    init_std: Annotated[float, Ge(0)] = 0.02
    """Initial scale ~ N(1, init_std), shift ~ N(0, init_std)."""
    pooled_site: Literal["official", "fc_norm"] = "official"
    """On a mean-pooling backbone: official scales and shifts the pooled features before the frozen
    ``fc_norm`` (not mergeable); fc_norm trains ``fc_norm`` instead (mergeable)."""
    patch_merging: bool = False
    """Swin: also a scale-shift after each patch-merging norm, as dongzelian/SSF models/swin_transformer.py
    reads (PatchMerging lines 397-398, 421-422: 274,432 on Swin-B); false: as that code runs (267,264 on
    Swin-B), where BasicLayer (line 477) hands PatchMerging the list of its blocks' tuning modes, so the
    ``tuning_mode == 'ssf'`` test never holds and no merging SSF exists."""


register(MethodSpec(
    name="ssf",
    summary="a learned scale and shift after every linear, norm and the patch embedding (mergeable)",
    options=SsfOptions,
    implementation="adaptcli.methods.ssf.method:Ssf",
    order=33,
    mergeable=True,
))
