"""Linear probing with a feature cache: the frozen backbone runs once, later epochs train the head only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.data.prepare.projection import free_bytes
from adaptcli.data.stream.batch import Batch
from adaptcli.data.stream.evaluation import EvalStream
from adaptcli.data.stream.workers import seed_of
from adaptcli.engine.feature_store import CacheStore, DiskFeatures, remove_leftovers
from adaptcli.errors import AdaptError
from adaptcli.methods.registry import method_spec
from adaptcli.models.blocks import classifier
from adaptcli.runs.session import Session


def _trainable_fc_norm(model: nn.Module) -> nn.Module | None:
    fc_norm = getattr(model, "fc_norm", None)
    if isinstance(fc_norm, nn.Module) and any(p.requires_grad for p in fc_norm.parameters()):
        return fc_norm
    return None


def _trainable_attn_pool(model: nn.Module) -> nn.Module | None:
    attn_pool = getattr(model, "attn_pool", None)
    if isinstance(attn_pool, nn.Module) and any(p.requires_grad for p in attn_pool.parameters()):
        return attn_pool
    return None


class HeadOnly(nn.Module):
    """The trainable tail of an adapted model (the attentive probe's ``attn_pool`` over cached tokens,
    ``fc_norm`` when it trains, the ``head_drop`` dropout, then the classifier).

    It holds the model's own modules, so training it trains the model.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.attn_pool = _trainable_attn_pool(model) or nn.Identity()
        self.fc_norm = _trainable_fc_norm(model) or nn.Identity()
        head_drop = getattr(model, "head_drop", None)
        self.head_drop = head_drop if isinstance(head_drop, nn.Dropout) else nn.Identity()
        self.classifier = classifier(model)

    def entry(self) -> nn.Module:
        """The module whose input is the cached feature."""
        if not isinstance(self.attn_pool, nn.Identity):
            return self.attn_pool
        return self.classifier if isinstance(self.fc_norm, nn.Identity) else self.fc_norm

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_drop(self.fc_norm(self.attn_pool(features))))


class FeatureCache:
    """Features and labels of this rank's share of the training split, replayed in shuffled batches.

    ``features``: a tensor in memory or a file on disk (:class:`~adaptcli.engine.feature_store.DiskFeatures`),
    both indexed by a batch's rows; :meth:`close` deletes the file."""

    def __init__(self, features: torch.Tensor | DiskFeatures, labels: torch.Tensor, batch_size: int, steps: int,
                 seed: int, rank: int):
        self.features, self.labels = features, labels
        self.batch_size, self.steps, self.seed, self.rank = batch_size, steps, seed, rank

    def close(self) -> None:
        """Delete the disk cache (nothing for one in memory)."""
        if isinstance(self.features, DiskFeatures):
            self.features.close()

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed_of(self.seed, epoch, self.rank))
        needed = self.steps * self.batch_size
        order = torch.cat([torch.randperm(len(self.labels), generator=generator)
                           for _ in range(-(-needed // max(1, len(self.labels))))])
        for step in range(self.steps):
            index = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield Batch(inputs=self.features[index], labels=self.labels[index], keys=[])


@torch.no_grad()
def compute_features(model: nn.Module, entry: nn.Module, accelerator: Any, loader: EvalStream, *,
                     batch_size: int, steps: int, seed: int, rank: int, show: bool = True,
                     damaged: dict[str, str] | None = None, store: CacheStore = CacheStore(),
                     world: int = 1) -> FeatureCache:
    """One deterministic pass of the frozen ``model`` over ``loader``, keeping the inputs of ``entry``.

    ``entry`` is the first trainable module of the head (:meth:`HeadOnly.entry`); its inputs are
    the cached features, kept where ``store`` says (written as the pass goes). Shards the loader
    skipped as damaged are added to ``damaged``.
    """
    from tqdm.auto import tqdm

    captured = store.sink(rank, world)
    handle = entry.register_forward_pre_hook(lambda m, args: captured.add(args[0].float().cpu()))
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    complete = False
    try:
        for batch in tqdm(loader, disable=not show, desc="caching features", unit="batch", dynamic_ncols=True):
            inputs = batch.inputs_on(accelerator.device)
            if inputs.ndim == 6:  # video eval batches are B x V x C x T x H x W
                inputs = inputs.flatten(0, 1)
            with accelerator.autocast():
                model(inputs)
            # dim=0: multi-label targets are B x C rows, which must not be flattened
            labels.append(batch.labels.repeat_interleave(inputs.shape[0] // len(batch), dim=0))
        features = captured.finish()
        complete = True
    finally:
        handle.remove()
        model.train(was_training)
        if not complete:  # an error or Ctrl-C in the pass: no half-written cache is left
            captured.discard()
    if damaged is not None:
        damaged.update(loader.damaged)
    if not len(features):
        return FeatureCache(torch.empty(0), torch.empty(0, dtype=torch.long), batch_size, steps, seed, rank)
    return FeatureCache(features, torch.cat(labels), batch_size, steps, seed, rank)


#: The cache lives in host memory when it takes at most this share of the host's memory (its size, not what
#: is free now, so every process of a run on one host decides alike), else on disk where it fits there.
CACHE_SHARE_OF_HOST_MEMORY = 0.5


def trainable_module(session: Session, *, cache_folder: Path | None = None,
                     accelerator: Any = None) -> tuple[nn.Module, CacheStore | None]:
    """What the optimiser trains, and where the feature cache goes: the head alone (:class:`HeadOnly`) when
    the feature cache applies and fits in memory or, failing that, on disk in ``cache_folder`` (then its
    :class:`CacheStore`); else the whole adapted model (then None). Says a token cache's size first, and
    where it goes whenever it does not stay in memory. Every rank of ``accelerator`` gets the main one's answer."""
    if feature_cache_applies(session.config):
        head = HeadOnly(session.model)
        tokens = head.entry() is head.attn_pool
        store, line = _same_on_every_rank(
            cache_place(session.config, cache_bytes(session, head), tokens=tokens, folder=cache_folder), accelerator)
        if line:
            session.output.echo(line)
        if cache_folder is not None and (store is None or store.folder is None):  # a killed run's file: not needed
            rank, world = (0, 1) if accelerator is None else (accelerator.process_index, accelerator.num_processes)
            remove_leftovers(cache_folder, rank, world)
        return (head, store) if store is not None else (session.model, None)
    return session.model, None


def cache_place(config: RunConfig, size: int, *, tokens: bool,
                folder: Path | None) -> tuple[CacheStore | None, str | None]:
    """Where a cache of ``size`` bytes goes (memory, ``folder`` on disk when it has the free space, or None:
    nowhere) and the line that says so (None for pooled features kept in memory, as small as a head)."""
    limit, named = memory_limit(config)
    what = "of tokens " if tokens else ""
    if limit is None or size <= limit:
        return CacheStore(), (f"feature cache: {gigabytes(size)} {what}for the training split, kept in memory"
                              if tokens else None)
    free = free_bytes(folder) if folder is not None else 0
    if folder is not None and size <= free:
        return CacheStore(folder), (f"feature cache: {gigabytes(size)} {what}for the training split exceeds {named} "
                                    f"({gigabytes(limit)}); written to {folder} ({gigabytes(free)} free there), "
                                    "read back per batch, deleted when training ends")
    disk = f" and the {gigabytes(free)} free in {folder}" if folder is not None else ""
    return None, (f"feature cache: {gigabytes(size)} for the training split exceeds {named} ({gigabytes(limit)})"
                  f"{disk}; the frozen backbone runs at every step instead")


def memory_limit(config: RunConfig) -> tuple[int | None, str]:
    """The most host memory the cache may take (None: unknown, no limit) and its name in words."""
    chosen = config.train.feature_cache_memory_gb
    if chosen is not None:
        return int(chosen * 1e9), "train.feature_cache_memory_gb"
    memory = host_memory_bytes()
    return (None if memory is None else int(CACHE_SHARE_OF_HOST_MEMORY * memory)), "half the host's memory"


def _same_on_every_rank(value: Any, accelerator: Any) -> Any:
    """The main process's ``value`` on every process (free disk space differs from one moment to the next)."""
    if accelerator is None or accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def cache_bytes(session: Session, head: HeadOnly) -> int:
    """float32 bytes the cached head inputs of the training split take: every token's width for the
    attentive probe (its pooler is the head's entry), the pooled width otherwise."""
    model = session.model
    samples = session.manifest.splits[session.config.data.train_split].samples
    per_sample = model.num_features
    if head.entry() is head.attn_pool:
        per_sample = (model.patch_embed.num_patches + getattr(model, "num_prefix_tokens", 0)) * model.embed_dim
    return 4 * samples * per_sample


def host_memory_bytes() -> int | None:
    """The host's physical memory (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gigabytes(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def feature_cache_applies(config: RunConfig) -> bool:
    """A method whose features never change (linear probing) and no augmentation: cache them."""
    data, train = config.data, config.train
    return (
        method_spec(config.method).feature_cache
        and train.feature_cache
        and data.augment == "resize"
        and not data.flip
        and not data.rand_augment
        and train.mixup == train.cutmix == train.random_erasing == 0
    )


def cache_training_features(session: Session, head: HeadOnly, accelerator: Any, *, steps: int, pin_memory: bool,
                            damaged: dict[str, str], store: CacheStore = CacheStore()) -> FeatureCache:
    """Run the frozen backbone once over this rank's share of the training split.

    Shards the stream skipped as damaged are added to ``damaged``; none readable at all is an error.
    """
    from adaptcli.data.stream.evaluation import eval_loader

    config, shards = session.config, session.shards
    split = config.data.train_split
    urls = shards.urls(split)
    shards.require_shards(urls)
    rank, world = accelerator.process_index, accelerator.num_processes
    loader = eval_loader(shards, split, session.spec, config.eval.batch_size, rank=rank, world_size=world,
                         workers=config.data.workers, skip_damaged=True, pin_memory=pin_memory, labelled=True)
    show = accelerator.is_main_process and session.output.bars
    cache = compute_features(session.model, head.entry(), accelerator, loader, batch_size=config.train.batch_size,
                             steps=steps, seed=config.train.seed, rank=rank, show=show, damaged=damaged,
                             store=store, world=world)
    if not len(cache.labels):
        first = next(iter(damaged.items()), (urls[0], "no samples"))
        raise AdaptError(f"no training sample could be read from the {len(urls)} shard(s) of {shards.path} "
                         f"({Path(first[0]).name}: {first[1]}); prepare the data again")
    return cache
