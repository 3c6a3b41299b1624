"""Datasets: prepare into WebDataset shards, stream them back.

- ``prepare`` (``prepare_dataset``: what ``adaptcli prepare`` runs): ``sources/`` (one module per
  dataset, listed by ``sources.registry``) -> ``encode`` (``video_decode``, ``image_encode``) ->
  ``shard_writer``; ``manifest`` describes the result (``dataset.json``, including ``hflip``).
- streaming: ``loader`` (``train_loader``, ``eval_loader``, ``StreamSpec``, ``steps_per_epoch``)
  built on ``sampling``, ``transforms`` and ``tar_reader``.
- ``synthetic``: real-format stand-ins (VP9 webm, SSv2 layout) for tests, the demo and benchmarks.

Nothing heavy is imported here, so ``adaptcli --help`` stays instant.
"""
