"""The training loop: one engine for every method, image and video, on Hugging Face Accelerate."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from adaptcli.data.stream.batch import Batch
from adaptcli.engine.batch_augment import BatchAugment
from adaptcli.engine.batches import DataWait, EpochStreams, log_first_keys
from adaptcli.engine.compile import compile_in_place
from adaptcli.engine.clock import RunClock
from adaptcli.engine.device import fp32_note, pins_memory, training_accelerator
from adaptcli.engine.ema import WeightEma, save_ema_weights
from adaptcli.engine.evaluate import validate, validate_probes
from adaptcli.engine.feature_store import CacheStore, disk_cache_folder
from adaptcli.engine.features import trainable_module
from adaptcli.engine.memory import reset_peak_memory
from adaptcli.engine.optim import build_optimizer, build_scheduler, effective_lr, match_saved_groups
from adaptcli.engine.probe_grid import GridScheduler, ProbeGrid, chosen_probe, grid_optimizer, probe_lrs, probe_table
from adaptcli.engine.signals import StopSignals
from adaptcli.engine.step import timed_step
from adaptcli.engine.summary import SessionStats, epoch_line, epoch_record, train_summary
from adaptcli.engine.tracking import start_trackers, tracker_values
from adaptcli.errors import AdaptError
from adaptcli.methods.registry import probe_settings
from adaptcli.models.recompute import apply_recompute
from adaptcli.runs import checkpoint as ckpt
from adaptcli.runs.folder import RunDir
from adaptcli.runs.results import TrainSummary
from adaptcli.runs.session import Session


class Trainer:
    """``Trainer.setup(session, run)`` -> ``train()`` -> ``cleanup()``.

    Checkpoints at epoch ends and, with ``train.save_every_steps``, every N optimiser steps; a
    resume continues with the very tensors an uninterrupted run would have: the data stream of an
    epoch is a pure function of (seed, epoch, rank, worker), so it is rebuilt and fast-forwarded
    past the batches already trained, then the random state saved with the checkpoint is restored.
    SIGTERM / SIGUSR1 finish the current step, save, and raise :class:`~adaptcli.errors.Interrupted`.
    """

    def __init__(self, session: Session, run: RunDir, accelerator: Any, trained: nn.Module, optimizer: Any,
                 scheduler: Any, *, lr: float, steps_per_epoch: int, feature_cache: bool,
                 settings: list[tuple[float, float]], grid: ProbeGrid | None = None,
                 lrs: list[float] | None = None, cache_store: CacheStore | None = None):
        self.session, self.config, self.run, self.accelerator = session, session.config, run, accelerator
        self.trained, self.optimizer, self.scheduler = trained, optimizer, scheduler
        self.lr, self.steps_per_epoch, self.use_feature_cache = lr, steps_per_epoch, feature_cache
        self.cache_store = cache_store
        self.pin_memory = pins_memory(accelerator.device)
        self.is_main, self.world = accelerator.is_main_process, accelerator.num_processes
        self.out = session.output.main_only(self.is_main)
        self.weights = ckpt.Weights(session.model, session.adapt, session.config, session.manifest)
        self.state, self.stats, self.signals = ckpt.TrainState(), SessionStats(), StopSignals()
        self.resume_rng: dict[str, Any] | None = None
        self.clock = RunClock()  # started again when train() starts
        self.wait, self.streams = DataWait(), EpochStreams.of(session, accelerator, pin_memory=self.pin_memory)
        self.ema: WeightEma | None = None
        self.augment = BatchAugment.of(session.config.train, session.manifest.num_classes, accelerator.device)
        self.applied_lr = self._current_lr()  # the lr of the last optimiser step (before any: the first one's)
        # a probe grid (method.lrs / weight_decays): its probes' (lr, weight decay), and the probe the run keeps
        self.grid, self.lrs, self.settings = grid, lrs or [lr], settings
        self.chosen = 0
        if grid is not None:
            self.eval_grid = grid.over(session.model)
            self.weights.tensors = lambda state: grid.probe_state(self.chosen, session.model, state)

    @classmethod
    def setup(cls, session: Session, run: RunDir, *, resume: bool = False) -> Trainer:
        """Accelerator, recompute, feature cache, compilation, optimiser and scheduler; the last checkpoint
        when resuming. ``session`` was built with ``train.seed`` (:meth:`Session.for_training`)."""
        config, train = session.config, session.config.train
        accelerator = training_accelerator(config, run.path)
        apply_recompute(session.model, train.recompute)
        settings = probe_settings(config.method, config.method_options, train.lr, train.weight_decay)
        if len(settings) == 1:  # one probe: method.lrs / weight_decays of one value each are train.lr / weight_decay
            train = dataclasses.replace(train, lr=settings[0][0], weight_decay=settings[0][1])
        lr, steps = effective_lr(train, accelerator.num_processes), session.steps_per_epoch(accelerator.num_processes)
        trained, store = trainable_module(session, cache_folder=disk_cache_folder(run.path, train.feature_cache_dir),
                                          accelerator=accelerator)
        cached = store is not None
        if train.compile:  # after the method is applied; keys stay those of the eager model
            compile_in_place(trained)
        grid, lrs, earlier = None, None, None
        if len(settings) > 1:  # every probe on one backbone pass per batch
            grid = ProbeGrid.around(trained, session.model, len(settings))
            lrs = probe_lrs(train, settings, accelerator.num_processes)
            optimizer = grid_optimizer(grid, train, lrs, [decay for _, decay in settings])
            scheduler = GridScheduler(optimizer, grid, train, max(1, steps // train.accum_steps), lrs)
            trained = grid
        else:
            saved = ckpt.saved_group_shapes(run) if resume else None
            earlier = match_saved_groups(trained, train, saved[1], str(saved[0])) if saved is not None else None
            optimizer = build_optimizer(trained, train, lr)
            scheduler = build_scheduler(optimizer, train, max(1, steps // train.accum_steps), lr)
        trained, optimizer = accelerator.prepare(trained, optimizer)
        trainer = cls(session, run, accelerator, trained, optimizer, scheduler, lr=lr, steps_per_epoch=steps,
                      feature_cache=cached, settings=settings, grid=grid, lrs=lrs, cache_store=store)
        accelerator.register_for_checkpointing(scheduler)
        if not cached and grid is not None:  # the grid's main module is the whole model: keep what trains
            keep = grid.checkpoint_names(trainer.weights.names())
            accelerator.register_save_state_pre_hook(lambda models, states, _: ckpt.keep_trainable_only(states, keep))
        elif not cached:  # with the feature cache the prepared module is the head alone: all of it trains
            accelerator.register_save_state_pre_hook(ckpt.trainable_only_hook(trainer.weights))
        if train.ema is not None:  # after prepare: the average lives where the weights do
            trainer.ema = WeightEma(session.model, train.ema, trainer.weights.names())
        resumed = ckpt.load_last_checkpoint(run, accelerator, trainer.out) if resume else None
        if resumed is not None:
            trainer.state, trainer.resume_rng = resumed
            if earlier is not None:
                trainer.out.echo(f"resumed with the parameter groups the run was trained with: {earlier}")
            trainer.chosen = chosen_probe(trainer.state.history, trainer.state.best_epoch)
            if trainer.ema is not None:
                trainer.ema.load(ckpt.ema_checkpoint_file(run))
        return trainer

    def save_checkpoint(self, mid_epoch: bool = False) -> Path:
        """Accelerate ``save_state`` into a temporary folder renamed when complete; prune old ones."""
        acc = self.accelerator
        final = self.run.checkpoint_dir(self.state.epoch, self.state.step if mid_epoch else None)
        staged = final.with_name(f".tmp-{final.name}")
        acc.wait_for_everyone()
        acc.save_state(str(staged))
        acc.wait_for_everyone()
        self.state.train_seconds = self.clock.total()
        if self.is_main:
            averaged = self.ema.save_into_checkpoint(staged) if self.ema is not None else None
            ckpt.finish_checkpoint(self.run, staged, final, self.state, self.weights, self.config.train.keep_checkpoints)
            if averaged is not None:
                save_ema_weights(self.run.ema_file, averaged, self.weights.metadata(self.state))
        acc.wait_for_everyone()
        return final

    def train(self) -> TrainSummary:
        """Train the remaining epochs; :class:`Interrupted` after a stop signal (a checkpoint is saved)."""
        acc = self.accelerator
        with self.signals.caught():
            if self.config.train.precision == "auto" and acc.mixed_precision == "no":
                self.out.echo(fp32_note(acc.device))  # stdout: a failing run's stderr stays one line
            start_trackers(acc, self.config)
            self.clock.start(self.state.train_seconds)
            self.stats.steps_before = self.state.step
            reset_peak_memory(acc.device)
            if self.use_feature_cache:
                head = self.grid.main if self.grid is not None else getattr(self.trained, "module", self.trained)
                self.streams = EpochStreams.cached(self.session, head, acc,
                                                   steps=self.steps_per_epoch, pin_memory=self.pin_memory,
                                                   damaged=self.stats.damaged, store=self.cache_store)
            loss = float("nan")
            try:
                for epoch in range(self.state.epoch, self.config.train.epochs):
                    loss = self._epoch(epoch)
            finally:
                self.streams.close()
        self.state.train_seconds = self.clock.total()
        summary = train_summary(self.session, self.state, self.stats, accelerator=acc, lr=self.lrs[self.chosen],
                                feature_cache=self.use_feature_cache, seconds=self.clock.part(), loss=loss,
                                data_wait=self.wait.share, probes=len(self.settings))
        if self.grid is not None:
            summary.probes = probe_table(self.settings, self.state.history, self.session.metric, self.chosen)
        return summary

    def _epoch(self, epoch: int) -> float:
        """Train one epoch (the rest of it after a mid-epoch resume), validate, checkpoint; its mean loss."""
        train = self.config.train
        done = self.state.batch  # > 0 only when resuming from a mid-epoch checkpoint
        set_seed(train.seed + 1000 * (epoch + 1))  # the epoch's randomness depends on (seed, epoch) only
        self.trained.train()
        opened = time.time()
        batches = self.streams.batches(epoch)  # without a prefetched stream, this starts the workers
        self.wait.add_outside_loop(time.time() - opened)
        if done:
            for _ in range(done):  # the same batches the interrupted run trained on: not again
                next(batches)
            ckpt.set_rng_state(self.resume_rng)
        loss_sum, count = (self.state.loss_sum, self.state.loss_count) if done else (0.0, 0)
        probe_sums = list(self.state.probe_loss_sums) if done and self.grid is not None else [0.0] * len(self.lrs)
        start, samples = time.time(), 0
        with tqdm(total=self.steps_per_epoch, initial=done, disable=not (self.is_main and self.out.bars),
                  desc=f"epoch {epoch + 1}/{train.epochs}", unit="step", dynamic_ncols=True) as bar:
            for index, batch in zip(range(done, self.steps_per_epoch), self.wait.timed(batches)):
                losses, synced = self._train_step(epoch, index, batch)
                loss = sum(losses) / len(losses)  # a probe grid's: the mean over its probes
                loss_sum, count = loss_sum + loss, count + 1
                probe_sums = [total + value for total, value in zip(probe_sums, losses)]
                samples += len(batch) * self.world
                if index + 1 >= self.steps_per_epoch - self.streams.lead and epoch + 1 < train.epochs:
                    self.streams.prefetch(epoch + 1)
                elapsed = time.time() - start
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.applied_lr:.2e}",
                                sps=f"{samples / max(elapsed, 1e-9):.1f}", wait=f"{self.wait.share_with(elapsed):.0%}")
                bar.update(1)
                if synced and index + 1 < self.steps_per_epoch:
                    if self.grid is not None:
                        self.state.probe_loss_sums = probe_sums
                    self._mid_epoch(index, loss_sum, count)
        self.wait.wall += time.time() - start
        self.state.epoch, self.state.batch, self.state.loss_sum, self.state.loss_count = epoch + 1, 0, 0.0, 0
        self.state.probe_loss_sums = []
        self.stats.samples += samples
        loss = loss_sum / max(count, 1)
        probe_losses = [total / max(count, 1) for total in probe_sums] if self.grid is not None else None
        self._end_epoch(epoch, loss, time.time() - start, samples, probe_losses)
        return loss

    def _train_step(self, epoch: int, index: int, batch: Batch) -> tuple[list[float], bool]:
        """One batch: (its loss, one per probe of a probe grid; whether an optimiser step happened); a
        non-finite loss stops the run."""
        if index == 0:
            log_first_keys(self.run, self.accelerator, epoch, batch.keys)
        self.stats.add_batch(batch)
        loss, synced, seconds = timed_step(self.accelerator, self.trained, self.optimizer, batch, self.config.train,
                                           self.session.multi_label, self.augment)
        self.stats.step_seconds += seconds
        if synced:
            self.state.step += 1
            self.applied_lr = self._current_lr()  # read before the scheduler sets the next step's lr
            self.scheduler.step_update(num_updates=self.state.step)
            if self.ema is not None:
                self.ema.update(self.session.model, self.state.step)
        for probe, value in enumerate(loss):
            if not math.isfinite(value):
                where, fix = "", "lower train.lr"
                if self.grid is not None:
                    lr, decay = self.settings[probe]
                    where, fix = f" for probe {probe} (lr {lr:g}, weight decay {decay:g})", f"drop {lr:g} from method.lrs"
                raise AdaptError(f"loss became {value}{where} at step {self.state.step} (epoch {epoch + 1}); training "
                                 f"stopped, the last good checkpoint is kept in {self.run.checkpoints}; {fix}")
        return loss, synced

    def _mid_epoch(self, index: int, loss_sum: float, count: int) -> None:
        """After an optimiser step inside an epoch: checkpoint every ``train.save_every_steps``, or to stop."""
        self.state.batch, self.state.loss_sum, self.state.loss_count = index + 1, loss_sum, count
        stop = self.signals.requested(self.accelerator)
        every = self.config.train.save_every_steps
        if stop or (every and self.state.step % every == 0):
            saved = self.save_checkpoint(mid_epoch=True)
            if stop:
                self.signals.stop(self.run, self.accelerator, self.state, saved)

    def _end_epoch(self, epoch: int, loss: float, seconds: float, samples: int,
                   probe_losses: list[float] | None = None) -> None:
        """Validate when due, log the epoch's record, checkpoint; stop here after a stop signal."""
        train = self.config.train
        record = epoch_record(epoch, self.state.step, loss, self.applied_lr, seconds, samples, self.accelerator)
        if probe_losses is not None:
            record["probe_losses"] = probe_losses
            if not self.session.val_split:  # nothing to validate on: the lowest training loss is kept
                self.chosen = chosen_probe([record], None)
        if self.session.val_split and ((epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs):
            record.update(self._validate() if self.grid is None else self._validate_probes())
        self.state.history.append(record)
        self.accelerator.log(tracker_values(record), step=epoch + 1)  # no-op without trackers
        if self.is_main:
            self.run.log(record)
        self.out.echo(epoch_line(record, self.session.metric))
        if note := self.wait.warning(self.config.data.workers):
            self.out.echo(note)
        saved = self.save_checkpoint()
        if epoch + 1 < train.epochs and self.signals.requested(self.accelerator):
            self.signals.stop(self.run, self.accelerator, self.state, saved)

    def _validate(self) -> dict[str, float]:
        """The epoch's validation values; keeps the best epoch's weights (on the headline metric)."""
        values, headline = validate(self.session, self.accelerator, self.session.val_split)
        if self.ema is not None:  # the average's best epoch is kept, as timm's train.py selects on its EMA
            averaged, headline = self.ema.validate(self.session, self.accelerator, self.session.val_split)
            values.update(averaged)
        if self.state.improves(headline) and self.is_main:
            if self.ema is None:
                self.weights.save(self.run.best_file, self.state)
            else:
                save_ema_weights(self.run.best_file, self.ema.tensors(), self.weights.metadata(self.state))
        return values

    def _validate_probes(self) -> dict[str, Any]:
        """A probe grid's validation, one backbone pass for all probes: the best probe's values (as one
        probe's), every probe's headline value, and which was best; keeps the best (epoch, probe)."""
        metric = self.session.metric
        results = validate_probes(self.session, self.accelerator, self.session.val_split, self.eval_grid)
        headlines = [headline for _, headline in results]
        best = max(range(len(results)), key=lambda k: (headlines[k], -k))
        values: dict[str, Any] = {**results[best][0], f"probe_val_{metric}": headlines, "best_probe": best}
        if self.state.improves(headlines[best]):
            self.chosen = best
            if self.is_main:
                self.weights.save(self.run.best_file, self.state)
        return values

    def _current_lr(self) -> float:
        """The optimiser's lr now (the first parameter group's): the one its next step applies."""
        return float(self.optimizer.param_groups[0]["lr"])

    def cleanup(self) -> None:
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
