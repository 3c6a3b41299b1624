"""peft tuners and LoRA initialisations that need more than injection into the model: refused in one line.

``--method peft`` injects the tuner and trains it with adaptcli's loop. What needs a step of its own
(a pass over data before training, a call every step, quantised weights, other adapters) would otherwise
train as a plain tuner and silently not be what its paper describes. PiSSA, OLoRA (rewrites.py), EVA
(eva.py) and LoRA+ (``train.loraplus_ratio``) have that step here.
"""

from __future__ import annotations

from typing import Any

from adaptcli.errors import ConfigError

#: peft types whose method is more than their injected layers.
TUNERS = {
    "ADALORA": "AdaLoRA reallocates ranks during training (peft's update_and_allocate after every step), which "
               "adaptcli's training loop does not call; use LORA (or init_lora_weights: eva for data-driven ranks)",
    "XLORA": "X-LoRA mixes LoRA adapters trained before (its adapters option) with a learned gate; train LORA "
             "adapters first, adaptcli does not mix them",
    "POLY": "Poly routes each sample by a task id passed to every forward, which adaptcli's loop has not",
    "ADAPTION_PROMPT": "adaption prompts wrap LLaMA-style attention layers, which timm models have not",
    "TRAINABLE_TOKENS": "trainable tokens adapt a token embedding, which a ViT (patch embedding) has not",
}

#: LoRA ``init_lora_weights`` values whose initialisation needs a step adaptcli does not make.
INITS = {
    "corda": "CorDA builds each adapter from a pass over data (peft's preprocess_corda: covariance of every "
             "layer's inputs) that adaptcli does not make; use init_lora_weights: eva (a pass adaptcli makes) or pissa",
    "loftq": "LoftQ quantises the base weights (peft's LoftQ alternating quantisation and SVD) and adaptcli trains "
             "on full-precision backbones; use init_lora_weights: pissa, its full-precision counterpart",
    "lora_ga": "LoRA-GA builds each adapter from gradients over a data pass (peft's preprocess_loraga) that "
               "adaptcli does not make; use init_lora_weights: eva or pissa",
}


def check_needs_only_injection(peft_type: str, options: dict[str, Any]) -> None:
    """A one-line :class:`ConfigError` for a tuner or LoRA initialisation in :data:`TUNERS` or :data:`INITS`."""
    if peft_type in TUNERS:
        raise ConfigError(f"method.peft_type={peft_type}: {TUNERS[peft_type]}")
    init = options.get("init_lora_weights")
    if peft_type == "LORA" and isinstance(init, str) and init.lower() in INITS:
        raise ConfigError(f"method.peft_config.init_lora_weights={init}: {INITS[init.lower()]}")
    if options.get("loftq_config") or options.get("use_qalora"):
        raise ConfigError(f"method.peft_config.{'loftq_config' if options.get('loftq_config') else 'use_qalora'}: "
                          "quantised base weights, and adaptcli trains on full-precision backbones; drop it")


__all__ = ["INITS", "TUNERS", "check_needs_only_injection"]
