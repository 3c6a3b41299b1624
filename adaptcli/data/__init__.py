"""Datasets: prepare into WebDataset shards, stream them back.

- ``prepare/`` (what ``adaptcli prepare`` runs): a dataset's own layout -> shards.
- ``stream/``: shards -> training and evaluation batches (``train_loader``, ``eval_loader``, ``Batch``,
  ``ShardFolder``).
- shared by both: ``manifest`` (``dataset.json``), ``names`` (split and file names), ``config``
  (the ``data`` section of a run's configuration).
- ``synthetic``: real-format stand-ins (VP9 webm, SSv2 layout) for tests, the demo and benchmarks.

Nothing heavy is imported here, so ``adaptcli --help`` stays instant.
"""
