"""Checkpoints written the way the original projects write them, from small models.

* MAE pre-training (facebookresearch/mae ``misc.save_model``): ``{"model", "optimizer", "epoch",
  "scaler", "args"}``, the encoder in timm names plus ``mask_token`` and ``decoder_*``.
* VideoMAE (MCG-NJU/VideoMAE): the same wrapper; attention with ``qkv.weight`` (no bias) and
  separate ``q_bias`` / ``v_bias``; pre-training keys under ``encoder.`` beside ``decoder.``,
  ``encoder_to_decoder`` and ``mask_token``. :class:`VideoMAEReference` is an independent forward
  pass in that layout, so a loaded adaptcli model can be compared with it.
* vit_jax ``.npz`` (ImageNet-21k ViT): flat ``Transformer/encoderblock_i/...`` arrays, JAX layouts.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def training_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """The dict MAE and VideoMAE ``save_model`` write: weights, optimizer, epoch, scaler, args."""
    param = nn.Parameter(torch.randn(4, 4))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.sum().backward()
    optimizer.step()
    return {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                   "growth_interval": 2000, "_growth_tracker": 7},
        "args": argparse.Namespace(batch_size=64, lr=1.5e-4, model="vit_base", mask_ratio=0.75,
                                   input_size=224, output_dir="./out", window_size=(8, 14, 14)),
    }


# --------------------------------------------------------------------------- MAE


def mae_pretrain_state(encoder: nn.Module, decoder_dim: int = 32) -> dict[str, torch.Tensor]:
    """MaskedAutoencoderViT keys: the timm encoder (no head) plus decoder and mask token."""
    state = {k: v.clone() for k, v in encoder.state_dict().items() if not k.startswith(("head", "fc_norm"))}
    width = encoder.embed_dim
    tokens = encoder.pos_embed.shape[1]
    patch = encoder.patch_embed.patch_size[0]
    state["mask_token"] = torch.randn(1, 1, decoder_dim)
    state["decoder_embed.weight"] = torch.randn(decoder_dim, width)
    state["decoder_embed.bias"] = torch.randn(decoder_dim)
    state["decoder_pos_embed"] = torch.randn(1, tokens, decoder_dim)
    for name, shape in (("norm1", (decoder_dim,)), ("norm2", (decoder_dim,))):
        state[f"decoder_blocks.0.{name}.weight"] = torch.randn(shape)
        state[f"decoder_blocks.0.{name}.bias"] = torch.randn(shape)
    state["decoder_blocks.0.attn.qkv.weight"] = torch.randn(3 * decoder_dim, decoder_dim)
    state["decoder_blocks.0.attn.qkv.bias"] = torch.randn(3 * decoder_dim)
    state["decoder_norm.weight"] = torch.randn(decoder_dim)
    state["decoder_norm.bias"] = torch.randn(decoder_dim)
    state["decoder_pred.weight"] = torch.randn(patch * patch * 3, decoder_dim)
    state["decoder_pred.bias"] = torch.randn(patch * patch * 3)
    return state


# --------------------------------------------------------------------------- VideoMAE


def videomae_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's ``get_sinusoid_encoding_table``, computed with numpy as it does."""
    def angles(position: int) -> list[float]:
        return [position / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)]

    table = np.array([angles(p) for p in range(num_positions)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.FloatTensor(table).unsqueeze(0)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, tubelet: int):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))


class VideoMAEReference(nn.Module):
    """VideoMAE's fine-tuning ViT (mean pooling, ``fc_norm``), written independently of adaptcli."""

    def __init__(self, dim: int = 64, depth: int = 2, heads: int = 2, patch: int = 16, tubelet: int = 2,
                 num_classes: int = 5):
        super().__init__()
        self.patch_embed = _PatchEmbed(dim, patch, tubelet)
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.add_(torch.randn_like(p) * 0.05)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = x + videomae_table(x.shape[1], x.shape[2]).type_as(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc_norm(self.tokens(x).mean(1)))


def videomae_pretrain_state(reference: VideoMAEReference, decoder_dim: int = 32) -> dict[str, torch.Tensor]:
    """PretrainVisionTransformer keys: ``encoder.*`` (with a final ``norm``), decoder, mask token."""
    dim = reference.fc_norm.normalized_shape[0]
    state = {
        f"encoder.{k}": v.clone() for k, v in reference.state_dict().items()
        if not k.startswith(("fc_norm", "head"))
    }
    state["encoder.norm.weight"] = torch.randn(dim)
    state["encoder.norm.bias"] = torch.randn(dim)
    state["encoder_to_decoder.weight"] = torch.randn(decoder_dim, dim)
    state["mask_token"] = torch.randn(1, 1, decoder_dim)
    state["decoder.blocks.0.norm1.weight"] = torch.randn(decoder_dim)
    state["decoder.blocks.0.attn.qkv.weight"] = torch.randn(3 * decoder_dim, decoder_dim)
    state["decoder.blocks.0.attn.q_bias"] = torch.randn(decoder_dim)
    state["decoder.blocks.0.attn.v_bias"] = torch.randn(decoder_dim)
    state["decoder.norm.weight"] = torch.randn(decoder_dim)
    state["decoder.head.weight"] = torch.randn(3 * 2 * 16 * 16, decoder_dim)
    return state


# --------------------------------------------------------------------------- vit_jax .npz


def vit_jax_arrays(vit: nn.Module) -> dict[str, np.ndarray]:
    """A timm ViT (class token, token pooling) in the vit_jax ``.npz`` layout."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in vit.state_dict().items()}
    dim = vit.embed_dim
    heads = vit.blocks[0].attn.num_heads
    out = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # HWIO
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "head/kernel": sd["head.weight"].T,
        "head/bias": sd["head.bias"],
    }
    for i in range(len(vit.blocks)):
        src, dst = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        out[dst + "LayerNorm_0/scale"] = sd[src + "norm1.weight"]
        out[dst + "LayerNorm_0/bias"] = sd[src + "norm1.bias"]
        out[dst + "LayerNorm_2/scale"] = sd[src + "norm2.weight"]
        out[dst + "LayerNorm_2/bias"] = sd[src + "norm2.bias"]
        weights = np.split(sd[src + "attn.qkv.weight"], 3)
        biases = np.split(sd[src + "attn.qkv.bias"], 3)
        for name, w, b in zip(("query", "key", "value"), weights, biases):
            out[dst + f"MultiHeadDotProductAttention_1/{name}/kernel"] = w.T.reshape(dim, heads, -1)
            out[dst + f"MultiHeadDotProductAttention_1/{name}/bias"] = b.reshape(heads, -1)
        proj = sd[src + "attn.proj.weight"]  # out x in, in = heads * head_dim
        out[dst + "MultiHeadDotProductAttention_1/out/kernel"] = proj.T.reshape(heads, -1, dim)
        out[dst + "MultiHeadDotProductAttention_1/out/bias"] = sd[src + "attn.proj.bias"]
        for j, fc in enumerate(("fc1", "fc2")):
            out[dst + f"MlpBlock_3/Dense_{j}/kernel"] = sd[src + f"mlp.{fc}.weight"].T
            out[dst + f"MlpBlock_3/Dense_{j}/bias"] = sd[src + f"mlp.{fc}.bias"]
    out["pre_logits/kernel"] = np.zeros((dim, dim), np.float32)  # original 21k files carry one
    out["pre_logits/bias"] = np.zeros((dim,), np.float32)
    return out


# --------------------------------------------------------------------------- Swin (microsoft/Swin-Transformer)


def swin_original_state(swin: nn.Module) -> dict[str, torch.Tensor]:
    """A timm Swin in the original repository's layout: patch merging at the END of a stage
    (``layers.i.downsample`` for timm's ``layers.i+1.downsample``), ``head.*`` for ``head.fc.*``,
    and the index and mask buffers the original saves."""
    import re

    out: dict[str, torch.Tensor] = {}
    for key, value in swin.state_dict().items():
        key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
        out[key.replace("head.fc.", "head.")] = value.clone()
    for name, buffer in swin.named_buffers():
        if name.endswith(("relative_position_index", "attn_mask")):
            out[name] = buffer.clone()
    return out
