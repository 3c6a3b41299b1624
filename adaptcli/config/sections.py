"""The sections of a run's configuration and the resolved :class:`RunConfig`.

Plain dataclasses: pydantic validates them as they are (:mod:`adaptcli.config.schema`), reading the
annotated-types bounds of each field and the docstring under it (the key's description in
``adaptcli config --schema``). The model, data and method sections live with the code that reads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from annotated_types import Ge, Gt, Interval

from adaptcli.data.config import DataConfig
from adaptcli.errors import ConfigError
from adaptcli.methods.registry import NoOptions, method_spec
from adaptcli.models.config import ModelConfig

DEFAULT_METHOD = "linear"


Count = Annotated[int, Ge(1)]
Rate = Annotated[float, Interval(ge=0, lt=1)]


@dataclass
class TrainConfig:
    """Optimisation, schedule (timm's ``CosineLRScheduler``), batch augmentation and checkpoints."""

    epochs: Count = 10
    """Training epochs."""
    batch_size: Count = 32
    """Samples per batch on each process."""
    accum_steps: Count = 1
    """Batches whose gradients are summed into one optimiser step."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    """The optimiser."""
    lr: Annotated[float, Gt(0)] = 0.1
    """Learning rate, multiplied by effective batch / ``lr_base_batch`` when that is set."""
    lr_base_batch: Optional[Count] = 256
    """The batch size ``lr`` is given for (linear scaling); null: ``lr`` as it is."""
    momentum: Rate = 0.9
    """SGD momentum."""
    weight_decay: Annotated[float, Ge(0)] = 0.0
    """Weight decay."""
    warmup_epochs: Annotated[float, Ge(0)] = 1.0
    """Length of the linear warm-up, in epochs."""
    min_lr: Annotated[float, Ge(0)] = 0.0
    """Where the cosine ends (and the cool-down stays)."""
    schedule_unit: Literal["step", "epoch"] = "step"
    """Whether the lr changes every optimiser step or once per epoch (timm's ``t_in_epochs``, as timm's
    train.py and Adapter+ do)."""
    warmup_lr: Optional[Annotated[float, Ge(0)]] = None
    """Where the warm-up starts; null: lr / (warm-up length + 1)."""
    warmup_prefix: bool = True
    """Start the cosine after the warm-up; false: the warm-up replaces its first part (timm train.py's
    default)."""
    cooldown_epochs: Annotated[int, Ge(0)] = 0
    """The last epochs of ``epochs`` that stay at ``min_lr`` (timm train.py's cool-down)."""
    clip_grad: Optional[Annotated[float, Gt(0)]] = None
    """Clip the gradient norm to this value; null: no clipping."""
    label_smoothing: Rate = 0.0
    """Label smoothing of the cross-entropy (and of the mixup/cutmix targets)."""
    pace_lambda: Annotated[float, Ge(0)] = 0.0
    """PACE's consistency weight lambda (Ni et al., NeurIPS 2024): a second forward pass with other noise,
    loss + lambda x mean over samples of the squared logit distance; needs ``pace_sigma`` > 0; 0: off."""
    pace_sigma: Annotated[float, Ge(0)] = 0.0
    """PACE's noise sigma: the adapter's output times N(1, sigma_l^2), sigma_l falling linearly with depth
    from sigma (adapter methods only, docs/methods.md); 0: off."""
    ema: Optional[Annotated[float, Interval(gt=0, lt=1)]] = None
    """Keep a weight EMA with this decay (timm ModelEmaV3, :mod:`adaptcli.engine.ema`), validated and saved
    beside the raw weights; null: off."""
    layer_decay: Optional[Annotated[float, Interval(gt=0, le=1)]] = None
    """Layer-wise lr decay: block i of L trains at lr x layer_decay^(L - i) (timm's
    ``param_groups_layer_decay``; the embedding one step lower, the final norm with the last block, the head
    at lr); null: off."""
    loraplus_ratio: Optional[Annotated[float, Gt(0)]] = None
    """LoRA+ (Hayou et al., ICML 2024): LoRA's B factors (and 1-D tensors, as the official code) train at this
    many times the lr (:mod:`adaptcli.engine.loraplus`); the paper's rule of thumb is 16 (2^4); null: off."""
    mixup: Annotated[float, Ge(0)] = 0.0
    """timm Mixup alpha on each training batch, in the training process (:mod:`adaptcli.engine.batch_augment`);
    0: off."""
    cutmix: Annotated[float, Ge(0)] = 0.0
    """timm CutMix alpha on each training batch; 0: off."""
    mixup_prob: Annotated[float, Interval(ge=0, le=1)] = 1.0
    """Probability that a batch is mixed at all."""
    mixup_switch_prob: Annotated[float, Interval(ge=0, le=1)] = 0.5
    """Probability of CutMix instead of Mixup when both are on."""
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    """Mix parameters drawn per batch, per pair or per element (timm)."""
    random_erasing: Annotated[float, Interval(ge=0, le=1)] = 0.0
    """timm RandomErasing probability on each training sample (pixel mode); 0: off."""
    precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """Mixed precision; auto: bf16 on a CUDA GPU that has it, else fp32."""
    recompute: Literal["none", "frozen", "all"] = "none"
    """Trade compute for activation memory (:mod:`adaptcli.models.recompute`): none, frozen (selective
    recomputation in blocks with frozen weights) or all (every block)."""
    feature_cache: bool = True
    """Cache the frozen backbone's outputs when the method never changes them (linear probing, the attentive
    probe's tokens): in host memory, or as float32 files on disk when they exceed ``feature_cache_memory_gb``
    (deleted when training ends); where neither has room the backbone runs at every step."""
    feature_cache_memory_gb: Optional[Annotated[float, Ge(0)]] = None
    """The most host memory (GB) the feature cache may take before it goes to disk; null: half the host's
    memory; 0: always on disk."""
    feature_cache_dir: Optional[str] = None
    """An existing folder for the disk feature cache (a fast local disk); null: ``feature-cache/`` in the run
    folder."""
    seed: Annotated[int, Ge(0)] = 0
    """Random seed."""
    eval_every: Count = 1
    """Validate every N epochs."""
    keep_checkpoints: Count = 2
    """Checkpoints kept in the run folder."""
    max_steps_per_epoch: Optional[Count] = None
    """Cut every epoch after N batches; null: whole epochs."""
    save_every_steps: Optional[Count] = None
    """Also checkpoint every N optimiser steps inside an epoch (``--resume`` continues from the exact
    batch); null: at epoch ends only."""
    log_with: Optional[str] = None
    """Accelerate trackers, comma-separated: tensorboard, wandb, mlflow, ...; null: none."""
    compile: bool = False
    """``torch.compile`` the trained model in place (state-dict keys unchanged)."""


@dataclass
class EvalConfig:
    """Testing."""

    views: str = "1x1"
    """CLIPSxCROPS for video: the softmax is averaged over the views of each video."""
    batch_size: Count = 32
    """Samples (videos) per evaluation batch."""


@dataclass
class HeadConfig:
    """The classifier."""

    norm: Literal["none", "bn"] = "none"
    """bn puts ``BatchNorm1d(affine=False)`` before the classifier, for every method (AdaptFormer's
    scripts); none is the plain Linear (ARC's and VPT's protocols)."""


@dataclass
class RunConfig:
    """A fully resolved run: model, method, data, training and evaluation settings."""

    method: str = DEFAULT_METHOD
    model: ModelConfig = field(default_factory=ModelConfig)
    method_options: Any = field(default_factory=NoOptions)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict in the recipe layout (``method:`` holds name and options)."""
        return {
            "model": dataclasses.asdict(self.model),
            "method": {"name": self.method, **dataclasses.asdict(self.method_options)},
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            "head": dataclasses.asdict(self.head),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


#: The recipe's sections besides ``method``, in the order of a recipe.
SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "head": HeadConfig,
}


def valid_keys(method: str) -> list[str]:
    """Every dotted key a recipe or ``--set`` may name for this method."""
    keys = [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    keys += [f"method.{f.name}" for f in dataclasses.fields(method_spec(method).options)]
    return keys


def parse_views(text: str) -> tuple[int, int]:
    """``"2x3"`` -> (2 clips, 3 crops) for ``eval.views`` and ``--views``."""
    try:
        clips, crops = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--views expects CLIPSxCROPS such as 2x3, got '{text}'") from None
    if clips < 1 or crops < 1:
        raise ConfigError(f"--views needs at least one clip and one crop, got '{text}'")
    return clips, crops
