"""BitFit (Zaken et al., ACL 2022): only the backbone's biases train. Registration."""

from __future__ import annotations

from adaptcli.methods.registry import MethodSpec, NoOptions, register

register(MethodSpec(
    name="bitfit",
    summary="every backbone tensor named *bias* trains, Swin's relative position bias too (mergeable)",
    options=NoOptions,
    implementation="adaptcli.methods.bitfit.method:BitFit",
    order=32,
    mergeable=True,
))
