"""Several probes on one frozen backbone pass per batch: V-JEPA's grid of attentive classifiers
(``multihead_kwargs`` in facebookresearch/vjepa2's ``configs/eval/``), one per (lr, weight decay).

Probe 0 is the run's own (the adapted model's pooler, ``fc_norm`` and classifier); probes 1..N-1 are
copies of it made before training, so every probe starts from the same weights. The probes share no
parameter: their losses are summed, so each one's gradient is its own loss's, and each has its own
optimiser parameter groups (its lr and weight decay) and its own lr schedule. The run keeps the chosen
probe (best on validation) in the model's own key names, so a grid run's files are a one-probe run's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from adaptcli.config import TrainConfig
from adaptcli.engine.features import HeadOnly
from adaptcli.engine.optim import build_scheduler, effective_lr, optimizer_over, parameter_groups

#: The head modules a probe consists of (:class:`HeadOnly`'s, the dropout has no state).
TAIL_PARTS = ("attn_pool", "fc_norm", "classifier")


class ProbeGrid(nn.Module):
    """``main`` (the adapted model, or its :class:`HeadOnly` on cached tokens) holds probe 0; ``probes`` the
    other probes' tails. The forward runs ``main`` once and hands the input of its first trainable module
    (the tokens entering the pooler) to every other probe: logits ``N x B x C``."""

    def __init__(self, main: nn.Module, entry: nn.Module, probes: nn.ModuleList):
        super().__init__()
        self.main, self.probes = main, probes
        self._entry = (entry,)  # main's own module, not registered twice

    @classmethod
    def around(cls, main: nn.Module, model: nn.Module, count: int) -> ProbeGrid:
        """``count`` probes: ``main``'s and ``count - 1`` copies of ``model``'s head tail (same weights)."""
        tail = HeadOnly(model)
        return cls(main, tail.entry(), nn.ModuleList(copy.deepcopy(tail) for _ in range(count - 1)))

    def over(self, model: nn.Module) -> ProbeGrid:
        """The same probes on the whole adapted ``model`` (validation reads images, not cached tokens)."""
        return ProbeGrid(model, HeadOnly(model).entry(), self.probes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = self._entry[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            first = self.main(inputs)
        finally:
            handle.remove()
        return torch.stack([first, *(probe(captured[0]) for probe in self.probes)])

    def probe_parameters(self) -> list[list[nn.Parameter]]:
        """Each probe's trainable parameters, probe 0 first."""
        first = [p for p in self.main.parameters() if p.requires_grad]
        return [first, *([p for p in probe.parameters() if p.requires_grad] for probe in self.probes)]

    def probe_state(self, index: int, model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` (the model's trainable state, which holds probe 0) with probe ``index``'s tensors in
        their places, under the model's own key names."""
        if index == 0:
            return state
        own, probe = HeadOnly(model), self.probes[index - 1]
        names = {id(module): name for name, module in model.named_modules()}
        state = dict(state)
        for part in TAIL_PARTS:
            module = getattr(own, part)
            if isinstance(module, nn.Identity):
                continue
            prefix = names[id(module)]
            for key, value in getattr(probe, part).state_dict().items():
                if f"{prefix}.{key}" not in state:
                    raise KeyError(f"{prefix}.{key} is not a trained tensor of the model")
                state[f"{prefix}.{key}"] = value
        return state

    def checkpoint_names(self, model_names: set[str]) -> set[str]:
        """The grid's state-dict keys a checkpoint keeps when ``main`` is the whole model: the model's trained
        tensors (``model_names``) and every other probe's."""
        return {f"main.{name}" for name in model_names} | {f"probes.{key}" for key in self.probes.state_dict()}


def grid_optimizer(grid: ProbeGrid, train: TrainConfig, lrs: list[float], decays: list[float]) -> torch.optim.Optimizer:
    """One optimiser, each probe's parameters in their own groups (timm's decay / no-decay split, as for one
    probe) with that probe's lr and weight decay: a probe's step is the one it would take alone."""
    groups = []
    modules = [grid.main, *grid.probes]
    for module, lr, decay in zip(modules, lrs, decays):
        for group in parameter_groups(module, decay, train.layer_decay):
            groups.append({**group, "lr": lr})
    return optimizer_over(groups, train, lrs[0])


class _Groups:
    """Some of an optimiser's parameter groups, for a scheduler that sets their lr. Read at every use: loading
    a state (Accelerate's prepare on a device, a resume) replaces the optimiser's group dicts."""

    def __init__(self, optimizer: torch.optim.Optimizer, indices: list[int]):
        self.optimizer, self.indices = optimizer, indices

    @property
    def param_groups(self) -> list[dict]:
        return [self.optimizer.param_groups[index] for index in self.indices]


class GridScheduler:
    """One lr schedule per probe (:func:`~adaptcli.engine.optim.build_scheduler` from that probe's lr, so
    the default warm-up start ``lr / (warmup + 1)`` is the probe's own), stepped together."""

    def __init__(self, optimizer: torch.optim.Optimizer, grid: ProbeGrid, train: TrainConfig, steps_per_epoch: int,
                 lrs: list[float]):
        by_param = {id(p): index for index, params in enumerate(grid.probe_parameters()) for p in params}
        self.schedulers = []
        for index, lr in enumerate(lrs):
            groups = [i for i, g in enumerate(optimizer.param_groups) if by_param[id(g["params"][0])] == index]
            self.schedulers.append(build_scheduler(_Groups(optimizer, groups), train, steps_per_epoch, lr))

    def step_update(self, num_updates: int) -> None:
        for scheduler in self.schedulers:
            scheduler.step_update(num_updates=num_updates)

    def state_dict(self) -> dict[str, Any]:
        return {"probes": [scheduler.state_dict() for scheduler in self.schedulers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for scheduler, saved in zip(self.schedulers, state["probes"], strict=True):
            scheduler.load_state_dict(saved)


def probe_lrs(train: TrainConfig, settings: list[tuple[float, float]], world_size: int) -> list[float]:
    """Each probe's lr as the optimiser applies it (:func:`~adaptcli.engine.optim.effective_lr`)."""
    return [effective_lr(replace(train, lr=lr), world_size) for lr, _ in settings]


def chosen_probe(history: list[dict[str, Any]], best_epoch: int | None) -> int:
    """The probe a grid run keeps: the best on validation (the epoch record of ``best_epoch`` names it),
    else (no validation) the one with the lowest mean training loss in the last epoch; 0 before either."""
    if best_epoch is not None:
        record = next((r for r in history if r.get("epoch") == best_epoch), {})
        return int(record.get("best_probe", 0))
    losses = history[-1].get("probe_losses") if history else None
    return min(range(len(losses)), key=lambda k: losses[k] if math.isfinite(losses[k]) else math.inf) if losses else 0


def probe_table(settings: list[tuple[float, float]], history: list[dict[str, Any]], metric: str,
                chosen: int) -> list[dict[str, Any]]:
    """``summary.json``'s ``probes``: each probe's lr, weight decay, best validation value (with its epoch),
    last mean training loss, and whether the run kept it."""
    rows = []
    for index, (lr, decay) in enumerate(settings):
        row: dict[str, Any] = {"lr": lr, "weight_decay": decay}
        validated = [(r[f"probe_val_{metric}"][index], r["epoch"]) for r in history if f"probe_val_{metric}" in r]
        if validated:
            value, epoch = max(validated, key=lambda pair: (pair[0], -pair[1]))
            row.update({f"best_val_{metric}": value, "best_epoch": epoch})
        losses = [r["probe_losses"][index] for r in history if "probe_losses" in r]
        if losses:
            row["final_loss"] = losses[-1]
        row["chosen"] = index == chosen
        rows.append(row)
    return rows
