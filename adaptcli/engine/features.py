"""Linear probing with a feature cache: the frozen backbone runs once, later epochs train the head only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import nn

from adaptcli.models.blocks import classifier

if TYPE_CHECKING:
    from adaptcli.engine.trainer import Trainer


def _trainable_fc_norm(model: nn.Module) -> nn.Module | None:
    fc_norm = getattr(model, "fc_norm", None)
    if isinstance(fc_norm, nn.Module) and any(p.requires_grad for p in fc_norm.parameters()):
        return fc_norm
    return None


class HeadOnly(nn.Module):
    """The trainable tail of an adapted model (``fc_norm`` when it trains, then the classifier).

    It holds the model's own modules, so training it trains the model.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.fc_norm = _trainable_fc_norm(model) or nn.Identity()
        self.classifier = classifier(model)

    def entry(self) -> nn.Module:
        """The module whose input is the cached feature."""
        return self.classifier if isinstance(self.fc_norm, nn.Identity) else self.fc_norm

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fc_norm(features))


class FeatureCache:
    """Features and labels of this rank's share of the training split, replayed in shuffled batches."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, steps: int, seed: int, rank: int):
        self.features, self.labels = features, labels
        self.batch_size, self.steps, self.seed, self.rank = batch_size, steps, seed, rank

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 1_009 + self.rank)
        needed = self.steps * self.batch_size
        order = torch.cat([torch.randperm(len(self.labels), generator=generator)
                           for _ in range(-(-needed // max(1, len(self.labels))))])
        for step in range(self.steps):
            index = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield {"inputs": self.features[index], "labels": self.labels[index], "keys": []}


@torch.no_grad()
def compute_features(trainer: "Trainer", show: bool = True) -> FeatureCache:
    """One deterministic pass of the frozen backbone over this rank's share of the training split."""
    from tqdm.auto import tqdm

    from adaptcli.data.loader import eval_loader

    model, acc = trainer.model, trainer.accelerator
    head = trainer.trained.module if hasattr(trainer.trained, "module") else trainer.trained
    captured: list[torch.Tensor] = []
    handle = head.entry().register_forward_pre_hook(lambda m, args: captured.append(args[0].float().cpu()))
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    loader = eval_loader(trainer.data_dir, trainer.config.data.train_split, trainer.spec,
                         trainer.config.eval.batch_size, rank=trainer.rank, world_size=trainer.world,
                         workers=trainer.config.data.workers)
    try:
        for batch in tqdm(loader, disable=not show, desc="caching features", unit="batch", dynamic_ncols=True):
            inputs = batch["inputs"]
            if inputs.ndim == 6:  # video eval batches are B x V x C x T x H x W
                inputs = inputs.flatten(0, 1)
            with acc.autocast():
                model(inputs.to(acc.device))
            labels.append(batch["labels"].repeat_interleave(inputs.shape[0] // batch["labels"].shape[0]))
    finally:
        handle.remove()
        model.train(was_training)
    return FeatureCache(torch.cat(captured), torch.cat(labels), trainer.config.train.batch_size,
                        trainer.steps_per_epoch, trainer.config.train.seed, trainer.rank)
