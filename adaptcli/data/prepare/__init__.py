"""``adaptcli prepare``: a dataset's own layout -> WebDataset shards and ``dataset.json``.

``prepare.prepare_dataset`` lists the source (``sources/``, one module per layout, found by
``sources.registry``), encodes every item (``encode``: ``video_decode``, ``image_encode``) and writes
the shards (``shard_writer``). Nothing is imported here, so ``adaptcli prepare --help`` stays instant.
"""
