"""The shape every method shares: options, injection, trainable set, merge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from adaptcli.errors import NotMergeableError
from adaptcli.methods.registry import MethodSpec, cannot_merge_message


@dataclass
class AdaptInfo:
    """What a method did to a model, returned by :func:`~adaptcli.methods.apply.apply_method` (the
    caller keeps it with the model: saving, counting and merging need it)."""

    method: str
    options: Any
    mergeable: bool
    owned_prefixes: list[str] = field(default_factory=list)  # method and head modules (state to save)
    method_param_names: list[str] = field(default_factory=list)
    #: parts of trained tensors held fixed (gradient zeroed) and not counted: name -> element count
    fixed_elements: dict[str, int] = field(default_factory=dict)


class Method:
    """Base class: subclasses implement :meth:`inject` (and :meth:`merge` when the spec says mergeable).

    Name and flags come from the method's :class:`~adaptcli.methods.registry.MethodSpec`.
    """

    #: Frames per clip of the run (``model.num_frames``), set by :func:`~adaptcli.methods.apply.apply_method`
    #: before :meth:`inject`: methods with per-frame parameters size them by it.
    num_frames: int | None = None

    def __init__(self, spec: MethodSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def check_model(self, model: nn.Module) -> None:
        """Raise :class:`~adaptcli.errors.UnsupportedModelError` when the method cannot apply."""

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        """Add the method's modules in place; return the qualified names of the modules it added."""
        raise NotImplementedError

    def existing_parameters(self, model: nn.Module) -> list[str]:
        """Backbone parameters the method trains as its own (BitFit's biases); none by default."""
        return []

    def is_mergeable(self, model: nn.Module) -> bool:
        """Whether this adapted ``model`` folds into the plain architecture (the spec's flag unless an
        option placed something no layer can absorb)."""
        return self.spec.mergeable

    def kept_frozen(self, model: nn.Module) -> list[str]:
        """Parameters that stay frozen although they sit in a module that always trains (the head's)."""
        return []

    def fixed_parts(self, model: nn.Module) -> dict[str, slice]:
        """Slices (along the first dimension) of trained parameters that must stay as they are."""
        return {}

    def pace_sites(self, model: nn.Module) -> list[Any]:
        """The modules whose output is the adapter's output, for PACE's noise
        (:class:`~adaptcli.methods.pace.PaceSite`); only methods whose spec sets ``pace`` have them."""
        raise NotImplementedError(f"{self.name} has no adapter output for PACE's noise")

    def merge(self, model: nn.Module) -> None:
        """Fold the method into the backbone in place, restoring the original architecture."""
        raise NotMergeableError(cannot_merge_message(self.name))

    def needs_data_pass(self, options: Any) -> bool:
        """Whether the injected modules start from a pass over the training data (:meth:`initialise_from_data`),
        made once before a new run trains; none by default."""
        return False

    def initialise_from_data(self, model: nn.Module, options: Any, batches: Iterable[torch.Tensor]) -> str:
        """Initialise the injected modules from ``batches`` (input tensors of the training stream); returns a
        line for the user saying what it did. Where the pass chooses shapes (EVA's ranks), it writes them into
        ``options`` (the run's configuration, recorded after it), so the configuration rebuilds the model."""
        raise NotImplementedError

    def started_options(self, recorded: Any, given: Any) -> Any:
        """A run's ``recorded`` options with what its data pass wrote into them put back as ``given`` has it:
        equal to ``given`` when the run started from them (a ``--resume`` with those options); ``recorded`` by
        default."""
        return recorded


def new_parameter_names(model: nn.Module, before: set[int]) -> list[str]:
    """Names of parameters that were not in the model before (by identity: wrapping renames)."""
    return [name for name, param in model.named_parameters() if id(param) not in before]


def hold_fixed(param: nn.Parameter, part: slice) -> int:
    """Zero the gradient of ``param[part]`` on every backward (with no weight decay on it, as biases
    have, the optimiser then leaves it unchanged); returns its element count."""
    def zero_part(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[part] = 0
        return grad

    param.register_hook(zero_part)
    return param[part].numel()


def freeze_all(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(False)


@torch.no_grad()
def fold_into_linear(linear: nn.Linear, matrix: torch.Tensor, shift: torch.Tensor) -> None:
    """Make ``linear(h @ matrix + shift)`` into a plain ``linear(h)``: W <- W matrix^T, c <- c + W shift."""
    weight = linear.weight
    new_bias = weight @ shift.to(weight)
    if linear.bias is None:
        if torch.count_nonzero(new_bias):
            raise NotMergeableError(
                "cannot merge: the layer after the adapter has no bias, so the adapter's bias has "
                "nowhere to go in the original architecture; export with --full or --adapter-only instead"
            )
    else:
        linear.bias.add_(new_bias)
    weight.copy_(weight @ matrix.to(weight).T)


def is_plain_layer_norm(norm: nn.Module) -> bool:
    """A LayerNorm with a weight and a bias whose forward is plain ``F.layer_norm`` (torch's, and
    timm's unless its fast-norm path is on): methods may then fold their own affine terms into
    ``F.layer_norm``'s weight and bias instead of paying a stream-sized element-wise pass."""
    from timm.layers import LayerNorm as TimmLayerNorm

    if type(norm) not in (nn.LayerNorm, TimmLayerNorm) or norm.weight is None or norm.bias is None:
        return False
    return not getattr(norm, "_fast_norm", False)
