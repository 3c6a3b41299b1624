"""A method's initialisation from the training data (EVA), made once before a new run trains.

The batches are the training stream's first epoch, as training draws them (``train.seed``), at most
:data:`MAX_BATCHES` of them: peft's EVA cycles through what it is given until its components converge
and keeps what it saw in memory. Torch's random state is left as it was, so training draws the same.
Shapes the pass chooses (EVA's ranks with ``rho`` > 1) go into the run's options before its configuration is
recorded, so that configuration rebuilds the model without the pass.
"""

from __future__ import annotations

import itertools

import torch

from adaptcli.methods.apply import get_method
from adaptcli.runs.session import Session

MAX_BATCHES = 64


def initialise_from_data(session: Session, rank: int = 0, world_size: int = 1,
                         device: torch.device | str = "cpu") -> None:
    """Run the method's data pass (:meth:`~adaptcli.methods.base.Method.initialise_from_data`) where it has one,
    on ``device`` (this process's accelerator; the model goes back to the CPU after, where training expects it)."""
    from adaptcli.data.stream.train import train_loader

    config = session.config
    method = get_method(config.method)
    if not method.needs_data_pass(config.method_options):
        return
    stream, steps = train_loader(session.shards, config.data.train_split, session.spec, config.train.batch_size,
                                 rank=rank, world_size=world_size, workers=config.data.workers,
                                 seed=config.train.seed, epoch=0)
    with torch.random.fork_rng():
        batches = [batch.inputs for batch in itertools.islice(stream.start(0), min(steps, MAX_BATCHES))]
        session.model.to(device)  # peft moves each batch to the model's device
        try:
            line = method.initialise_from_data(session.model, config.method_options, batches)
        finally:
            session.model.to("cpu")
    session.output.echo(line)


__all__ = ["MAX_BATCHES", "initialise_from_data"]
