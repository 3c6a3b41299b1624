"""Activation recomputation (``train.recompute``): less activation memory for a little more compute.

- ``none``: autograd keeps what backward needs.
- ``all``: classic gradient checkpointing. Every block keeps only its input and runs its forward
  again during backward (about one extra forward pass).
- ``frozen``: blocks with frozen weights (every method but full fine-tuning) are checkpointed
  *selectively*. A frozen block must otherwise keep what its input gradient needs: both LayerNorm
  inputs, q/k/v, the attention output and the MLP's hidden activation (about 10 stream-sized
  tensors per token). With this policy it keeps its input, the attention output and the outputs
  of the matmuls that do not widen the stream (output projection, ``fc2``, adapter down
  projections): 4 stream-sized tensors. During backward it recomputes the LayerNorms, activations
  and element-wise ops and the widening matmuls (``qkv``, ``fc1``, adapter up projections).
  Attention, the costliest op to redo, is never recomputed.

Built on PyTorch's own non-reentrant ``torch.utils.checkpoint`` and its selective
activation-checkpoint policies (``create_selective_checkpoint_contexts``), not a hand-written
autograd engine: gradients equal the plain model's up to float rounding (dropout masks are
replayed from the saved random state). The blocks are found by :func:`transformer_blocks`, so
this works for every backbone and method without knowing either.

Works on every torch adaptcli supports (pyproject.toml): the policy reads only the operator and its
inputs (``SelectiveCheckpointContext.op_output`` is newer than some of them), and
``respect_saved_tensors_hooks`` is passed only to a ``checkpoint`` that has it.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable, Literal

import torch
from torch import nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    create_selective_checkpoint_contexts,
    noop_context_fn,
)

from adaptcli.models.blocks import transformer_blocks

RecomputeMode = Literal["none", "frozen", "all"]
RECOMPUTE_MODES: tuple[str, ...] = ("none", "frozen", "all")

#: Fused attention kernels (CPU, CUDA flash / memory-efficient / cuDNN) whose outputs are kept.
ATTENTION_OPS = frozenset({
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
})
#: Matmuls, and the position of their left operand (the activation in ``x @ W``): ``addmm`` and
#: ``baddbmm`` take the tensor they add first; the right operand follows the left one.
MATMUL_LEFT_OPERAND = {"mm": 0, "bmm": 0, "addmm": 1, "baddbmm": 1}
#: Newer torch routes the tensors selective checkpointing keeps through the surrounding
#: ``saved_tensors_hooks`` only when asked (older ones never do, and know no such keyword).
HOOKS_KEYWORD = ({"respect_saved_tensors_hooks": True}
                 if "respect_saved_tensors_hooks" in inspect.signature(checkpoint).parameters else {})


def op_name(func: Any) -> str:
    """The ATen operator's name without its namespace (``aten::addmm`` -> ``addmm``)."""
    schema = getattr(func, "_schema", None)
    return schema.name.split("::")[-1] if schema is not None else str(func)


def frozen_block_policy(ctx: Any, func: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Keep attention and the matmuls whose output is no larger than their left operand (the
    activation they read); recompute the rest."""
    name = op_name(func)
    if name in ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    if name in MATMUL_LEFT_OPERAND:
        position = MATMUL_LEFT_OPERAND[name]
        left, right = args[position], args[position + 1]
        # (.., n, k) @ (.., k, m) -> (.., n, m): larger than the left operand exactly when m > k.
        widens = right.shape[-1] > left.shape[-1]
        # A vector times a matrix (one row) is cheap to redo, and torch's matmul squeezes that
        # result in place, which a cached tensor must not see.
        vector = left.shape[-2] == 1
        return CheckpointPolicy.PREFER_RECOMPUTE if widens or vector else CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _frozen_context() -> tuple[Any, Any]:
    return create_selective_checkpoint_contexts(frozen_block_policy)


def _needs_graph(block: nn.Module, args: tuple[Any, ...]) -> bool:
    """Backward reaches this block: its input or one of its parameters requires grad."""
    return any(isinstance(a, torch.Tensor) and a.requires_grad for a in args) or any(
        p.requires_grad for p in block.parameters())


def _checkpointed_forward(block: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """The block's own forward, run under ``torch.utils.checkpoint`` when backward will reach it."""
    forward = type(block).forward.__get__(block)
    if not torch.is_grad_enabled() or not _needs_graph(block, args):
        return forward(*args, **kwargs)
    context: Callable[[], tuple[Any, Any]] = block.recompute_context
    return checkpoint(forward, *args, use_reentrant=False, context_fn=context, **HOOKS_KEYWORD, **kwargs)


def is_frozen_block(block: nn.Module) -> bool:
    """Some of the block's weights are frozen (adapters inside it may train)."""
    return any(not p.requires_grad for p in block.parameters())


def apply_recompute(model: nn.Module, mode: str) -> int:
    """Set ``model``'s blocks up for ``mode`` (after the method has marked what trains); returns how
    many blocks recompute. The forward is replaced on the block instance, so parameter names and
    state dicts do not change."""
    if mode not in RECOMPUTE_MODES:
        raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE_MODES)}, got {mode!r}")
    if mode == "none":
        return 0
    count = 0
    for _, block in transformer_blocks(model):
        if mode == "frozen" and not is_frozen_block(block):
            continue
        block.recompute_context = noop_context_fn if mode == "all" else _frozen_context
        block.forward = types.MethodType(_checkpointed_forward, block)
        count += 1
    return count
