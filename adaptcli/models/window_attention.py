"""Video Swin's shifted-window attention on ``F.scaled_dot_product_attention``.

torchvision's ``shifted_window_attention_3d`` forms the scores with explicit matmul + softmax, which
keeps (and saves for backward) ``B * windows x heads x N x N`` score tensors. This subclass computes
the same attention with PyTorch's fused kernel: the relative-position bias, and for shifted windows
the ``-100`` mask of torchvision, go in as the additive ``attn_mask``. Same parameters, buffers and
state-dict keys; outputs equal torchvision's up to float rounding. It calls the ``qkv`` and ``proj``
modules (torchvision reads their weights), so a method that wraps them (LoRA) is part of the forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.video.swin_transformer import (
    ShiftedWindowAttention3d,
    _compute_attention_mask_3d,
    _compute_pad_size_3d,
    _get_window_and_shift_size,
)


class FusedShiftedWindowAttention3d(ShiftedWindowAttention3d):
    """torchvision's ``ShiftedWindowAttention3d`` with the scores never materialised by hand."""

    def forward(self, x: Tensor) -> Tensor:
        b, t, h, w, c = x.shape
        window, shift = _get_window_and_shift_size(self.shift_size.copy(), [t, h, w], self.window_size.copy())
        bias = self.get_relative_position_bias(window)  # 1 x heads x N x N
        pad = _compute_pad_size_3d((t, h, w), (window[0], window[1], window[2]))
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        _, tp, hp, wp, _ = x.shape
        shifted = sum(shift) > 0
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        grid = (tp // window[0], hp // window[1], wp // window[2])
        windows, n, heads = grid[0] * grid[1] * grid[2], window[0] * window[1] * window[2], self.num_heads
        x = x.view(b, grid[0], window[0], grid[1], window[1], grid[2], window[2], c)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b * windows, n, c)

        qkv = self.qkv(x)  # the module, not its weight: methods that wrap qkv (LoRA) take part
        if shifted:
            # The mask differs per window: windows become extra heads (B x windows*heads x N x d), so
            # a windows*heads x N x N mask broadcasts over the batch instead of being copied B times.
            mask = _compute_attention_mask_3d(x, (tp, hp, wp), (window[0], window[1], window[2]),
                                              (shift[0], shift[1], shift[2]))
            attn_mask = (bias + mask.unsqueeze(1)).reshape(1, windows * heads, n, n)
            qkv = qkv.view(b, windows, n, 3, heads, c // heads).permute(3, 0, 1, 4, 2, 5)
            q, k, v = qkv.reshape(3, b, windows * heads, n, c // heads).unbind(0)
        else:
            attn_mask = bias
            q, k, v = qkv.view(b * windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype), dropout_p=dropout)
        if shifted:
            out = out.view(b, windows, heads, n, c // heads).permute(0, 1, 3, 2, 4)
        else:
            out = out.transpose(1, 2)
        x = out.reshape(b * windows, n, c)
        x = F.dropout(self.proj(x), p=self.dropout, training=self.training)

        x = x.view(b, grid[0], grid[1], grid[2], window[0], window[1], window[2], c)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, tp, hp, wp, c)
        if shifted:
            x = torch.roll(x, shifts=(shift[0], shift[1], shift[2]), dims=(1, 2, 3))
        return x[:, :t, :h, :w, :].contiguous()
