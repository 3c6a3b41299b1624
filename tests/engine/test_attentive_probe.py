"""The attentive probe against V-JEPA's official AttentiveClassifier, its frozen pass, its runs.

The reference below is written from the equations of facebookresearch/vjepa2's
src/models/attentive_pooler.py and src/models/utils/modules.py (Block, CrossAttention,
CrossAttentionBlock, MLP), on the official parameter names (``pooler.*``, ``linear.*``), with plain
tensor operations in float64.
"""

from __future__ import annotations

import json
import math

import pytest
import timm
import torch

from adaptcli.cli import app
from adaptcli.engine import features
from adaptcli.errors import UnsupportedModelError
from adaptcli.methods import apply_method
from adaptcli.methods.registry import method_spec
from tests.engine.conftest import TINY
from tests.engine.test_finetune import runner

EPS = 1e-5  # nn.LayerNorm's default, the official norm_layer


def layer_norm(x, state, name):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS) * state[f"{name}.weight"] + state[f"{name}.bias"]


def linear(x, state, name):
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def mlp(x, state, name):
    hidden = linear(x, state, f"{name}.fc1")
    return linear(0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2))), state, f"{name}.fc2")  # exact GELU


def heads_of(x, heads):
    batch, count, dim = x.shape
    return x.reshape(batch, count, heads, dim // heads).transpose(1, 2)


def attend(q, k, v):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    out = weights @ v
    return out.transpose(1, 2).flatten(2)


def official_pooler(tokens, state, heads, depth):
    """AttentivePooler.forward: (depth - 1) Blocks, then the query's CrossAttentionBlock."""
    x, dim = tokens, tokens.shape[-1]
    for i in range(depth - 1):
        name = f"pooler.blocks.{i}"
        qkv = linear(layer_norm(x, state, f"{name}.norm1"), state, f"{name}.attn.qkv")
        q, k, v = (heads_of(part, heads) for part in qkv.split(dim, dim=-1))
        x = x + linear(attend(q, k, v), state, f"{name}.attn.proj")
        x = x + mlp(layer_norm(x, state, f"{name}.norm2"), state, f"{name}.mlp")
    block = "pooler.cross_attention_block"
    query = state["pooler.query_tokens"].repeat(len(x), 1, 1)
    normed = layer_norm(x, state, f"{block}.norm1")  # only the tokens are normed before cross-attention
    kv = linear(normed, state, f"{block}.xattn.kv")
    k, v = (heads_of(part, heads) for part in kv.split(dim, dim=-1))
    query = query + attend(heads_of(linear(query, state, f"{block}.xattn.q"), heads), k, v)  # no projection
    query = query + mlp(layer_norm(query, state, f"{block}.norm2"), state, f"{block}.mlp")
    return query


def official_classifier(tokens, state, heads, depth, between=lambda x: x):
    """AttentiveClassifier.forward: the pooler, squeeze, linear (``between``: the model's fc_norm, if any)."""
    return linear(between(official_pooler(tokens, state, heads, depth).squeeze(1)), state, "linear")


def official_names(model):
    """The adapted model's probe weights under the official AttentiveClassifier's names."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("attn_pool."):
            state["pooler." + key.removeprefix("attn_pool.")] = value
        elif key.startswith("head."):
            state["linear." + key.removeprefix("head.")] = value
    return state


def probe_model(name, options, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs)
    info = apply_method(model, "attentive_probe", method_spec("attentive_probe").options(**options))
    with torch.no_grad():  # move every probe weight (LayerNorms included) away from its initialisation
        generator = torch.Generator().manual_seed(3)
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model.double().eval(), info


CASES = [
    ("vit_tiny_patch16_224", {"img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 4}, (2, 3, 32, 32), {}),
    ("vit_tiny_patch16_224", {"img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 4}, (2, 3, 32, 32),
     {"depth": 1, "heads": 4}),
    ("video_vit_test", {}, (2, 3, 4, 32, 32), {"depth": 2, "heads": 8}),
    # EVA's pool hands every token (class token too) to attn_pool; mean pooling, so an fc_norm follows
    ("eva02_base_patch14_224", {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2}, (2, 3, 28, 28),
     {"depth": 2, "heads": 4}),
    # DINOv2 with 4 register tokens: five prefix tokens dropped
    ("vit_small_patch14_reg4_dinov2", {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2}, (2, 3, 28, 28),
     {"depth": 3, "heads": 2}),
]


@pytest.mark.parametrize("name,kwargs,shape,options", CASES)
def test_forward_equals_the_official_attentive_classifier(name, kwargs, shape, options):
    model, _ = probe_model(name, options, **kwargs)
    spec_defaults = method_spec("attentive_probe").options(**options)
    inputs = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        tokens = model.forward_features(inputs)[:, model.num_prefix_tokens:]  # V-JEPA's encoders: patch tokens
        state = official_names(model)
        # the video ViT's trained fc_norm sits between pooler and classifier (Identity on class-token ViTs)
        expected = official_classifier(tokens, state, spec_defaults.heads, spec_defaults.depth, model.fc_norm)
        assert torch.allclose(model(inputs), expected, rtol=0, atol=1e-12)
    assert len([k for k in state if k.startswith("pooler.blocks.") and k.endswith("attn.qkv.weight")]) \
        == spec_defaults.depth - 1


def test_official_defaults_and_initialisation():
    options = method_spec("attentive_probe").options()
    assert (options.depth, options.heads, options.mlp_ratio) == (4, 16, 4.0)  # configs/eval/vitl/*.yaml
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10)
    apply_method(model, "attentive_probe", options)
    pool = model.attn_pool
    assert pool.query_tokens.shape == (1, 1, 768) and len(pool.blocks) == 3
    # trunc-normal std 0.02, each block's output layers divided by sqrt(2 * layer), the cross block's fc2 by
    # the last block's: sqrt(2 * 3)
    for i, block in enumerate(pool.blocks):
        assert block.attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(2 * (i + 1)), rel=0.05)
    assert pool.cross_attention_block.mlp.fc2.weight.std().item() == pytest.approx(0.02 / math.sqrt(6), rel=0.05)
    assert pool.cross_attention_block.xattn.q.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(pool.cross_attention_block.xattn.kv.bias) == 0


def test_only_the_probe_trains_and_the_backbone_builds_no_graph():
    model, info = probe_model("vit_tiny_patch16_224", {}, img_size=32, embed_dim=64, depth=2, num_heads=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("attn_pool.", "head.")) for n in trainable)
    assert info.owned_prefixes[0] == "attn_pool" and not info.mergeable
    seen = []
    model.attn_pool.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model.train()(torch.randn(2, 3, 32, 32, dtype=torch.float64)).sum().backward()
    assert seen[0].grad_fn is None and not seen[0].requires_grad  # the frozen pass kept no activations
    assert seen[0].shape == (2, 5, 64) and model.attn_pool.prefix_tokens == 1  # the pooler drops the class token
    assert all(model.get_parameter(n).grad is not None for n in trainable)


def test_models_the_probe_cannot_use_are_refused():
    with pytest.raises(UnsupportedModelError, match="method.heads"):
        probe_model("vit_tiny_patch16_224", {"heads": 5}, img_size=32, embed_dim=64, depth=2, num_heads=4)
    with pytest.raises(UnsupportedModelError, match="pretrained attention head .* use --method linear"):
        probe_model("vit_tiny_patch16_224", {}, img_size=32, embed_dim=64, depth=2, num_heads=4, global_pool="map")


def run_probe(data, out, *extra):
    result = runner.invoke(app, ["finetune", "--method", "attentive_probe", "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), *TINY, *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text()), result.output


def test_image_runs_train_the_probe_on_cached_tokens_after_saying_their_size(image_shards, tmp_path):
    summary, output = run_probe(image_shards, tmp_path / "img", "--set", "train.epochs=3", "--set", "train.lr=0.003",
                                "--set", "method.heads=4")
    assert summary["feature_cache"] is True
    assert summary["best_val_top1"] > 60.0
    samples = json.loads((image_shards / "dataset.json").read_text())["splits"]["train"]["samples"]
    size = 4 * samples * (4 + 1) * 64  # float32, 4 patch tokens (16 px patches) and the class token of width 64
    assert f"feature cache: {size / 1e9:.2f} GB of tokens for the training split, kept in memory" in output
    full = runner.invoke(app, ["export", "--run", str(tmp_path / "img"), "--full", "--out", str(tmp_path / "f.safetensors")])
    assert full.exit_code == 0, full.output
    merged = runner.invoke(app, ["export", "--run", str(tmp_path / "img"), "--merge", "--out", str(tmp_path / "m.safetensors")])
    assert merged.exit_code == 2 and "attentive_probe cannot be merged" in merged.output, merged.output
    assert not (tmp_path / "m.safetensors").exists()


def test_tokens_that_do_not_fit_in_memory_are_cached_on_disk(image_shards, tmp_path, monkeypatch):
    monkeypatch.setattr(features, "host_memory_bytes", lambda: 1000)
    summary, output = run_probe(image_shards, tmp_path / "img", "--set", "train.epochs=1", "--set", "method.heads=4")
    assert summary["feature_cache"] is True and summary["steps"] > 0
    assert f"exceeds half the host's memory (0.00 GB); written to {tmp_path / 'img' / 'feature-cache'} (" in output
    assert not (tmp_path / "img" / "feature-cache").exists()  # tests/engine/test_disk_feature_cache.py: the rest


def test_video_runs_train_the_probe(video_shards, tmp_path):
    video, _ = run_probe(video_shards, tmp_path / "vid", "--model", "video_vit_test", "--set", "model.num_frames=4",
                         "--set", "train.epochs=1", "--set", "train.feature_cache=false")
    assert video["feature_cache"] is False and video["steps"] > 0
