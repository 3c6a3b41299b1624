"""``train.compile``: torch.compile of the trained model, in place, with a one-line error when it fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from adaptcli.errors import AdaptError


def compile_in_place(model: nn.Module) -> None:
    """``nn.Module.compile()``: the module's call goes through torch.compile, while its parameters,
    state-dict keys and hooks stay the module's own (``torch.compile(model)`` would add ``_orig_mod.``).
    Compilation itself happens at the first forward (and backward)."""
    model.compile()


@contextlib.contextmanager
def compile_errors(enabled: bool) -> Iterator[None]:
    """Turn a failing torch.compile (no C++ compiler, an unsupported op) into a one-line error."""
    try:
        yield
    except torch._dynamo.exc.TorchDynamoException as exc:
        if not enabled:
            raise
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise AdaptError(f"train.compile=true: torch.compile failed ({first.strip()}); "
                         "set --set train.compile=false to train without it") from None


def eager() -> contextlib.AbstractContextManager:
    """Run compiled modules eagerly (evaluation: no second compilation for eval mode and its batch sizes)."""
    return torch.compiler.set_stance("force_eager")
