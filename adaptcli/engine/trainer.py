"""The training loop: one engine for every method, image and video, on Hugging Face Accelerate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.engine.memory import peak_memory_mb, reset_peak_memory
from adaptcli.methods.registry import method_spec
from adaptcli.runs.folder import RunDir
from adaptcli.errors import AdaptError


@dataclass
class TrainState:
    """What a checkpoint records besides tensors (kept in ``state.json``)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    best_epoch: int | None = None
    best_top1: float | None = None  # the best validation value of the run's metric (mAP for multi-label)
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """``setup`` -> ``train`` -> ``cleanup``; checkpoints at epoch ends, exact resume from them."""

    def __init__(self, config: RunConfig, data_dir: Path, run: RunDir, *, resume: bool = False):
        self.config = config
        self.data_dir = Path(data_dir)
        self.run = run
        self.resume = resume
        self.state = TrainState()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from adaptcli.data.loader import StreamSpec
        from adaptcli.data.manifest import read_manifest
        from adaptcli.engine.distributed import force_cpu
        from adaptcli.engine.optim import build_optimizer, build_scheduler, effective_lr
        from adaptcli.engine.tracking import flat_hyperparameters, tracker_names
        from adaptcli.runs.build import build_adapted_model, check_modality, normalisation

        train = self.config.train
        trackers = tracker_names(train.log_with)

        self.accelerator = Accelerator(
            cpu=force_cpu(),
            mixed_precision=train.precision,
            gradient_accumulation_steps=train.accum_steps,
            log_with=trackers or None,
            project_dir=str(self.run.path),
        )
        if trackers:
            self.accelerator.init_trackers("adaptcli", config=flat_hyperparameters(self.config.to_dict()))
        self.is_main = self.accelerator.is_main_process
        set_seed(train.seed)
        self.manifest = read_manifest(self.data_dir)
        if self.config.data.train_split not in self.manifest.splits:
            raise AdaptError(
                f"split '{self.config.data.train_split}' is not in {self.data_dir} "
                f"(has {', '.join(self.manifest.splits)}); set --set data.train_split=NAME"
            )
        self.val_split = self.config.data.val_split if self.config.data.val_split in self.manifest.splits else None
        self.multi_label = self.manifest.multi_label
        self.metric = "mAP" if self.multi_label else "top1"
        if self.multi_label and train.label_smoothing:
            raise AdaptError(
                f"train.label_smoothing={train.label_smoothing} does not apply to multi-label data "
                "(binary cross-entropy per class); set --set train.label_smoothing=0"
            )

        model = build_adapted_model(self.config, self.manifest.num_classes, quiet=not self.is_main)
        check_modality(model, self.manifest.modality, self.config.model.name)
        self.video = self.manifest.modality == "video"
        norm = normalisation(model)
        self.spec = StreamSpec.from_config(
            self.config.data, self.config.model.img_size, self.config.model.num_frames, norm.mean, norm.std
        )
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.lr = effective_lr(train, self.world)

        self.use_feature_cache = self._feature_cache_applies()
        steps = self._steps_per_epoch()
        self.steps_per_epoch = steps
        self.opt_steps_per_epoch = max(1, steps // train.accum_steps)
        self.model = model
        if self.use_feature_cache:
            from adaptcli.engine.features import HeadOnly

            trained: nn.Module = HeadOnly(model)
        else:
            trained = model
        optimizer = build_optimizer(trained, train, self.lr)
        self.scheduler = build_scheduler(optimizer, train, self.opt_steps_per_epoch, self.lr)
        self.trained, self.optimizer = self.accelerator.prepare(trained, optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.accelerator.register_save_state_pre_hook(self._keep_trainable_only)
        if self.resume:
            self._load_last_checkpoint()

    def _feature_cache_applies(self) -> bool:
        """A method whose features never change (linear probing) and no augmentation: cache them."""
        data = self.config.data
        return (
            method_spec(self.config.method).feature_cache
            and self.config.train.feature_cache
            and data.augment == "resize"
            and not data.flip
        )

    def _steps_per_epoch(self) -> int:
        from adaptcli.data.loader import steps_per_epoch

        samples = self.manifest.splits[self.config.data.train_split].samples
        return steps_per_epoch(samples, self.config.train.batch_size, self.world, self.config.train.max_steps_per_epoch)

    # ------------------------------------------------------------------ checkpoints
    def _keep_trainable_only(self, models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        """Checkpoints hold the trainable tensors only; the frozen backbone comes from its file."""
        from adaptcli.methods.apply import trainable_state_dict

        keep = set(trainable_state_dict(self.model))
        for index, state in enumerate(weights):
            kept, storages = {}, set()
            for key, value in state.items():
                if _strip_prefix(key) not in keep:
                    continue
                # safetensors refuses tensors that share memory (peft tuners with shared state, VeRA):
                # the second name gets its own copy, and loading writes the same values back.
                storage = value.untyped_storage().data_ptr()
                kept[key] = value.clone() if storage in storages else value
                storages.add(storage)
            weights[index] = kept

    def save_checkpoint(self) -> None:
        from adaptcli.io import atomic_path, save_tensors, write_json
        from adaptcli.methods.apply import trainable_state_dict

        acc = self.accelerator
        final = self.run.checkpoint_dir(self.state.epoch)
        tmp = final.with_name(f".tmp-{final.name}")
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.is_main:
            write_json(tmp / "state.json", self.state.__dict__)
            with atomic_path(final) as staging:
                tmp.rename(staging)
            save_tensors(self.run.trainable_file, trainable_state_dict(self.model), self._metadata())
            self.run.prune_checkpoints(self.config.train.keep_checkpoints)
        acc.wait_for_everyone()

    def _load_last_checkpoint(self) -> None:
        import json

        checkpoints = self.run.checkpoint_dirs()
        if not checkpoints:
            raise AdaptError(f"--resume: {self.run.checkpoints} has no checkpoint yet; start the run again without --resume")
        last = checkpoints[-1]
        self.accelerator.load_state(str(last), strict=False)
        saved = json.loads((last / "state.json").read_text())
        self.state = TrainState(**saved)
        if self.is_main:
            print(f"resumed from {last} (epoch {self.state.epoch}, step {self.state.step})")

    def _metadata(self) -> dict[str, Any]:
        return {
            "format": "adaptcli.trainable/1",
            "method": self.config.method,
            "backbone": self.config.model.name,
            "epoch": self.state.epoch,
            "classes": self.manifest.classes,
            "modality": self.manifest.modality,
            "config": self.config.to_dict(),
        }

    # ------------------------------------------------------------------ training
    def train(self) -> dict[str, Any]:
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm

        from adaptcli.engine.evaluate import evaluate_model
        from adaptcli.engine.tracking import tracker_values

        train = self.config.train
        start = time.time()
        self.step_seconds = 0.0
        steps_before = self.state.step
        reset_peak_memory(self.accelerator.device)
        features = None
        if self.use_feature_cache:
            features = self._feature_cache()
        samples_seen = 0
        last_loss = float("nan")
        for epoch in range(self.state.epoch, train.epochs):
            set_seed(train.seed + 1000 * (epoch + 1))  # the epoch's randomness depends on (seed, epoch) only
            self.trained.train()
            if features is not None:
                batches = features.epoch_batches(epoch)
            else:
                batches = self._train_batches(epoch)
            bar = tqdm(total=self.steps_per_epoch, disable=not self.is_main, desc=f"epoch {epoch + 1}/{train.epochs}",
                       unit="step", dynamic_ncols=True)
            epoch_start, loss_sum, count, epoch_samples = time.time(), 0.0, 0, 0
            for index, batch in enumerate(batches):
                if index >= self.steps_per_epoch:
                    break
                if index == 0:
                    self._log_first_keys(epoch, batch.get("keys", []))
                step_start = time.perf_counter()
                loss = self._step(batch)
                loss_value = loss.item()  # waits for the device, so the step time is real
                self.step_seconds += time.perf_counter() - step_start
                if not math.isfinite(loss_value):
                    raise AdaptError(
                        f"loss became {loss_value} at step {self.state.step} (epoch {epoch + 1}); training "
                        f"stopped, the last good checkpoint is kept in {self.run.checkpoints}; lower train.lr"
                    )
                loss_sum += loss_value
                count += 1
                samples_seen += batch["labels"].shape[0] * self.world
                epoch_samples += batch["labels"].shape[0] * self.world
                elapsed = time.time() - epoch_start
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{self._current_lr():.2e}",
                                sps=f"{(count * batch['labels'].shape[0] * self.world) / max(elapsed, 1e-9):.1f}")
                bar.update(1)
            bar.close()
            self.state.epoch = epoch + 1
            last_loss = loss_sum / max(count, 1)
            seconds = time.time() - epoch_start
            record = {"event": "train", "epoch": epoch + 1, "step": self.state.step, "loss": last_loss,
                      "lr": self._current_lr(), "seconds": seconds,
                      "samples_per_second": epoch_samples / max(seconds, 1e-9),
                      "peak_memory_mb": peak_memory_mb(self.accelerator.device)[0]}
            if self.val_split and ((epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs):
                metrics = evaluate_model(self.model, self.accelerator, self.data_dir, self.val_split, self.spec,
                                         self.config, self.manifest, views=(1, 1), show=False)
                if self.multi_label:
                    record.update(val_mAP=metrics["mAP"])
                else:
                    record.update(val_top1=metrics["top1"], val_top5=metrics["top5"])
                self._track_best(metrics[self.metric])
            self.state.history.append(record)
            self.accelerator.log(tracker_values(record), step=epoch + 1)  # no-op without trackers
            if self.is_main:
                self.run.log(record)
                name = {"top1": "top-1", "mAP": "mAP"}[self.metric]
                val = f", val {name} {record['val_' + self.metric]:.2f}" if f"val_{self.metric}" in record else ""
                print(f"epoch {epoch + 1}: loss {last_loss:.4f}{val}")
            self.save_checkpoint()
        return self._summary(time.time() - start, samples_seen, last_loss, self.state.step - steps_before)

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _feature_cache(self):
        """Run the frozen backbone once over this rank's training share (see :mod:`.features`)."""
        from adaptcli.data.loader import eval_loader
        from adaptcli.engine.features import compute_features

        head = self.trained.module if hasattr(self.trained, "module") else self.trained
        loader = eval_loader(self.data_dir, self.config.data.train_split, self.spec, self.config.eval.batch_size,
                             rank=self.rank, world_size=self.world, workers=self.config.data.workers)
        return compute_features(self.model, head.entry(), self.accelerator, loader,
                                batch_size=self.config.train.batch_size, steps=self.steps_per_epoch,
                                seed=self.config.train.seed, rank=self.rank, show=self.is_main)

    def _train_batches(self, epoch: int):
        from adaptcli.data.loader import train_loader

        loader, _ = train_loader(
            self.data_dir, self.config.data.train_split, self.spec, self.config.train.batch_size,
            rank=self.rank, world_size=self.world, workers=self.config.data.workers,
            seed=self.config.train.seed, epoch=epoch,
        )
        return loader

    def _log_first_keys(self, epoch: int, keys: list[str]) -> None:
        """Which samples each rank started the epoch with (shows that ranks read different data)."""
        from accelerate.utils import gather_object

        per_rank = gather_object([list(keys)]) if self.world > 1 else [list(keys)]
        if self.is_main:
            self.run.log({"event": "data", "epoch": epoch + 1, "first_batch_keys": per_rank})

    def _step(self, batch: dict[str, Any]) -> torch.Tensor:
        acc = self.accelerator
        inputs = batch["inputs"].to(acc.device, non_blocking=True)
        labels = batch["labels"].to(acc.device, non_blocking=True)
        with acc.accumulate(self.trained):
            with acc.autocast():
                logits = self.trained(inputs)
                if self.multi_label:  # labels: B x C multi-hot
                    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
                else:
                    loss = nn.functional.cross_entropy(logits.float(), labels,
                                                       label_smoothing=self.config.train.label_smoothing)
            acc.backward(loss)
            if acc.sync_gradients and self.config.train.clip_grad:
                acc.clip_grad_norm_(self.trained.parameters(), self.config.train.clip_grad)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if acc.sync_gradients:
                self.state.step += 1
                self.scheduler.step_update(num_updates=self.state.step)
        return loss.detach()

    def _track_best(self, value: float) -> None:
        """Keep the epoch with the best validation ``self.metric`` (top-1, or mAP for multi-label)."""
        from adaptcli.io import save_tensors
        from adaptcli.methods.apply import trainable_state_dict

        if self.state.best_top1 is None or value > self.state.best_top1:
            self.state.best_top1 = value
            self.state.best_epoch = self.state.epoch
            if self.is_main:
                save_tensors(self.run.best_file, trainable_state_dict(self.model), self._metadata())

    def _summary(self, seconds: float, samples: int, loss: float, steps_here: int) -> dict[str, Any]:
        from adaptcli.runs.params import parameter_report

        report = parameter_report(self.model)
        peak_mb, memory_kind = peak_memory_mb(self.accelerator.device)
        return {
            "method": self.config.method,
            "backbone": self.config.model.name,
            "data": str(self.data_dir),
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "final_loss": loss,
            "task": self.manifest.task,
            "metric": self.metric,
            "best_epoch": self.state.best_epoch,
            f"best_val_{self.metric}": self.state.best_top1,
            "selected": "best on validation" if self.state.best_epoch else "last epoch (no validation split)",
            "train_seconds": round(seconds, 2),
            "samples_per_second": round(samples / seconds, 2) if seconds > 0 else None,
            "seconds_per_step": round(self.step_seconds / steps_here, 5) if steps_here else None,
            "peak_memory_mb": peak_mb,
            "peak_memory_kind": memory_kind,
            "feature_cache": self.use_feature_cache,
            "processes": self.world,
            "effective_lr": self.lr,
            **{k: report[k] for k in ("backbone_params", "method_params", "head_params", "trainable_params",
                                      "trainable_percent", "mergeable")},
        }

    def cleanup(self) -> None:
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()


def _strip_prefix(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key
