"""The training loop: one engine for every method, image and video, on Hugging Face Accelerate."""

from __future__ import annotations

import contextlib
import math
import pickle
import sys
import threading
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
from adaptcli.errors import AdaptError, Interrupted


@dataclass
class TrainState:
    """What a checkpoint records besides tensors (kept in ``state.json``)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    best_epoch: int | None = None
    best_top1: float | None = None  # the best validation value of the run's metric (mAP for multi-label)
    history: list[dict[str, Any]] = field(default_factory=list)
    batch: int = 0  # batches of epoch ``epoch`` already trained (a mid-epoch checkpoint; 0 at epoch ends)
    loss_sum: float = 0.0  # running loss of those batches, so the epoch's record is the same after a resume
    loss_count: int = 0


#: Signals that ask a run to stop: schedulers send them before preemption.
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class Trainer:
    """``setup`` -> ``train`` -> ``cleanup``.

    Checkpoints at epoch ends and, with ``train.save_every_steps``, every N optimiser steps; a
    resume continues with the very tensors an uninterrupted run would have: the data stream of an
    epoch is a pure function of (seed, epoch, rank, worker), so it is rebuilt and fast-forwarded
    past the batches already trained, then the random state saved with the checkpoint is restored.
    SIGTERM / SIGUSR1 finish the current step, save, and raise :class:`~adaptcli.errors.Interrupted`.
    """

    def __init__(self, config: RunConfig, data_dir: Path, run: RunDir, *, resume: bool = False):
        self.config = config
        self.data_dir = Path(data_dir)
        self.run = run
        self.resume = resume
        self.state = TrainState()
        self.damaged: dict[str, str] = {}  # training shards the stream skipped -> first reason
        self.skipped_samples = 0
        self.stop_signal: str | None = None
        self._resume_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from accelerate.utils import set_seed

        from adaptcli.data.loader import StreamSpec
        from adaptcli.data.manifest import read_manifest
        from adaptcli.engine.compile import compile_in_place
        from adaptcli.engine.device import build_accelerator, pins_memory
        from adaptcli.engine.optim import build_optimizer, build_scheduler, effective_lr
        from adaptcli.engine.tracking import tracker_names
        from adaptcli.models.recompute import apply_recompute
        from adaptcli.runs.build import build_adapted_model, check_modality, normalisation

        train = self.config.train
        trackers = tracker_names(train.log_with)

        self.accelerator = build_accelerator(
            self.config,
            gradient_accumulation_steps=train.accum_steps,
            log_with=trackers or None,
            project_dir=str(self.run.path),
        )
        self.precision = self.accelerator.mixed_precision  # auto resolved: recorded in summary.json
        self.pin_memory = pins_memory(self.accelerator.device)
        self.trackers = trackers  # started by train(): nothing is written in the run folder before run.json
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
        apply_recompute(model, train.recompute)
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
        if train.compile:  # after the method is applied; keys stay those of the eager model
            compile_in_place(trained)
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

        if self.use_feature_cache:  # the prepared module is the head alone (HeadOnly): all of it trains
            return
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

    def save_checkpoint(self, mid_epoch: bool = False) -> Path:
        """Accelerate ``save_state`` into a temporary folder renamed when complete; prune old ones."""
        from adaptcli.io import atomic_path, save_tensors, write_json
        from adaptcli.methods.apply import trainable_state_dict

        acc = self.accelerator
        final = self.run.checkpoint_dir(self.state.epoch, self.state.step if mid_epoch else None)
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
            self.run.set_state("running", epoch=self.state.epoch, step=self.state.step, checkpoint=final.name)
        acc.wait_for_everyone()
        return final

    def _load_last_checkpoint(self) -> None:
        import json

        checkpoints = self.run.checkpoint_dirs()
        if not checkpoints:
            if self.is_main:
                print(f"note: --resume: {self.run.path} has no checkpoint yet; training starts from step 0",
                      file=sys.stderr)
            return
        last = checkpoints[-1]
        try:
            self.accelerator.load_state(str(last), strict=False)
            saved = json.loads((last / "state.json").read_text())
            self.state = TrainState(**saved)
        except (OSError, ValueError, RuntimeError, EOFError, TypeError, KeyError, pickle.UnpicklingError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise AdaptError(f"checkpoint {last} is unreadable ({type(exc).__name__}: {first}); delete that folder "
                             "to resume from the one before, or start again with --overwrite") from None
        self._resume_rng = _rng_state()  # the random state of the step after the checkpoint
        if self.is_main:
            where = f", batch {self.state.batch} of epoch {self.state.epoch + 1}" if self.state.batch else ""
            print(f"resumed from {last} (epoch {self.state.epoch}, step {self.state.step}{where})")

    def _metadata(self) -> dict[str, Any]:
        return {
            "format": "adaptcli.trainable/1",
            "method": self.config.method,
            "backbone": self.config.model.name,
            "epoch": self.state.epoch,
            "step": self.state.step,
            "classes": self.manifest.classes,
            "modality": self.manifest.modality,
            "config": self.config.to_dict(),
        }

    # ------------------------------------------------------------------ training
    def train(self) -> dict[str, Any]:
        """Train the remaining epochs; :class:`Interrupted` after a stop signal (a checkpoint is saved)."""
        import signal

        handlers: dict[int, Any] = {}

        def ask_to_stop(signum: int, frame: Any) -> None:
            self.stop_signal = signal.Signals(signum).name

        if threading.current_thread() is threading.main_thread():
            handlers = {getattr(signal, name): signal.signal(getattr(signal, name), ask_to_stop) for name in STOP_SIGNALS}
        try:
            return self._train()
        finally:
            for signum, previous in handlers.items():
                signal.signal(signum, previous)

    def _train(self) -> dict[str, Any]:
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm

        from adaptcli.engine.compile import compile_errors, eager
        from adaptcli.engine.device import fp32_note
        from adaptcli.engine.evaluate import evaluate_model
        from adaptcli.engine.tracking import flat_hyperparameters, tracker_values

        train = self.config.train
        if self.is_main and train.precision == "auto" and self.precision == "no":
            print(fp32_note(self.accelerator.device))  # stdout: a failing run's stderr stays one line
        if self.trackers:
            self.accelerator.init_trackers("adaptcli", config=flat_hyperparameters(self.config.to_dict()))
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
            done = self.state.batch  # > 0 only when resuming from a mid-epoch checkpoint
            set_seed(train.seed + 1000 * (epoch + 1))  # the epoch's randomness depends on (seed, epoch) only
            self.trained.train()
            batches = iter(features.epoch_batches(epoch) if features is not None else self._train_batches(epoch))
            if done:
                for _ in range(done):  # the same batches the interrupted run trained on: not again
                    next(batches)
                _set_rng_state(self._resume_rng)
            loss_sum, count = (self.state.loss_sum, self.state.loss_count) if done else (0.0, 0)
            epoch_start, epoch_samples = time.time(), 0
            with tqdm(total=self.steps_per_epoch, initial=done, disable=not self.is_main,
                      desc=f"epoch {epoch + 1}/{train.epochs}", unit="step", dynamic_ncols=True) as bar:
                for index in range(done, self.steps_per_epoch):
                    batch = next(batches, None)
                    if batch is None:
                        break
                    if index == 0:
                        self._log_first_keys(epoch, batch.get("keys", []))
                    self.damaged.update(batch.get("damaged") or {})
                    self.skipped_samples += int(batch.get("skipped") or 0)
                    step_start = time.perf_counter()
                    with compile_errors(train.compile):
                        loss, synced = self._step(batch)
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
                                    sps=f"{epoch_samples / max(elapsed, 1e-9):.1f}")
                    bar.update(1)
                    last_batch = index + 1 == self.steps_per_epoch
                    if synced and not last_batch:
                        self.state.batch, self.state.loss_sum, self.state.loss_count = index + 1, loss_sum, count
                        stop = self._stop_requested()
                        every = train.save_every_steps
                        if stop or (every and self.state.step % every == 0):
                            saved = self.save_checkpoint(mid_epoch=True)
                            if stop:
                                self._interrupt(saved)
            self.state.epoch, self.state.batch, self.state.loss_sum, self.state.loss_count = epoch + 1, 0, 0.0, 0
            last_loss = loss_sum / max(count, 1)
            seconds = time.time() - epoch_start
            record = {"event": "train", "epoch": epoch + 1, "step": self.state.step, "loss": last_loss,
                      "lr": self._current_lr(), "seconds": seconds,
                      "samples_per_second": epoch_samples / max(seconds, 1e-9),
                      "peak_memory_mb": peak_memory_mb(self.accelerator.device)[0]}
            if self.val_split and ((epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs):
                with eager() if train.compile else contextlib.nullcontext():  # one compilation: training's
                    metrics = evaluate_model(self.model, self.accelerator, self.data_dir, self.val_split, self.spec,
                                             self.config, self.manifest, views=(1, 1), show=False,
                                             skip_damaged=True)
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
            saved = self.save_checkpoint()
            if epoch + 1 < train.epochs and self._stop_requested():
                self._interrupt(saved)
        return self._summary(time.time() - start, samples_seen, last_loss, self.state.step - steps_before)

    def _stop_requested(self) -> bool:
        """A stop signal reached any process (all processes agree, so they stop at the same step)."""
        flag = self.stop_signal is not None
        if self.world > 1:
            tensor = torch.tensor([1.0 if flag else 0.0], device=self.accelerator.device)
            flag = bool(self.accelerator.reduce(tensor, reduction="sum").item() > 0)
        return flag

    def _interrupt(self, checkpoint: Path) -> None:
        if self.is_main:
            self.run.set_state("interrupted", epoch=self.state.epoch, step=self.state.step, checkpoint=checkpoint.name,
                               reason=self.stop_signal or "a stop signal on another process")
        for tracker in self.accelerator.trackers:  # the process exits next: flush what the trackers hold
            tracker.finish()
        raise Interrupted(f"{self.stop_signal or 'stop signal'} at epoch {self.state.epoch + 1}, step {self.state.step}: "
                          f"checkpoint saved in {checkpoint}; continue with the same command and --resume")

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _feature_cache(self):
        """Run the frozen backbone once over this rank's training share (see :mod:`.features`)."""
        from adaptcli.data.loader import eval_loader, require_shards, split_urls
        from adaptcli.engine.features import compute_features

        split = self.config.data.train_split
        urls = split_urls(self.data_dir, split)
        require_shards(self.data_dir, urls)
        head = self.trained.module if hasattr(self.trained, "module") else self.trained
        loader = eval_loader(self.data_dir, split, self.spec, self.config.eval.batch_size,
                             rank=self.rank, world_size=self.world, workers=self.config.data.workers, skip_damaged=True,
                             pin_memory=self.pin_memory)
        cache = compute_features(self.model, head.entry(), self.accelerator, loader,
                                 batch_size=self.config.train.batch_size, steps=self.steps_per_epoch,
                                 seed=self.config.train.seed, rank=self.rank, show=self.is_main, damaged=self.damaged)
        if not len(cache.labels):
            first = next(iter(self.damaged.items()), (urls[0], "no samples"))
            raise AdaptError(f"no training sample could be read from the {len(urls)} shard(s) of {self.data_dir} "
                             f"({Path(first[0]).name}: {first[1]}); prepare the data again")
        return cache

    def _train_batches(self, epoch: int):
        from adaptcli.data.loader import train_loader

        loader, _ = train_loader(
            self.data_dir, self.config.data.train_split, self.spec, self.config.train.batch_size,
            rank=self.rank, world_size=self.world, workers=self.config.data.workers,
            seed=self.config.train.seed, epoch=epoch, pin_memory=self.pin_memory,
        )
        return loader

    def _log_first_keys(self, epoch: int, keys: list[str]) -> None:
        """Which samples each rank started the epoch with (shows that ranks read different data)."""
        from accelerate.utils import gather_object

        per_rank = gather_object([list(keys)]) if self.world > 1 else [list(keys)]
        if self.is_main:
            self.run.log({"event": "data", "epoch": epoch + 1, "first_batch_keys": per_rank})

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, bool]:
        """One forward/backward; the loss and whether an optimiser step happened (end of accumulation)."""
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
            synced = acc.sync_gradients
            if synced:
                self.state.step += 1
                self.scheduler.step_update(num_updates=self.state.step)
        return loss.detach(), synced

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
            "damaged_shards": {Path(url).name: reason for url, reason in sorted(self.damaged.items())},
            "skipped_samples": self.skipped_samples,
            "processes": self.world,
            "precision": self.precision,
            "compiled": self.config.train.compile,
            "effective_lr": self.lr,
            **{k: report[k] for k in ("backbone_params", "method_params", "head_params", "trainable_params",
                                      "trainable_percent", "mergeable")},
        }

    def cleanup(self) -> None:
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) random states, as Accelerate's ``load_state`` left them."""
    import random

    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any] | None) -> None:
    import random

    import numpy as np

    if state is None:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _strip_prefix(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key
