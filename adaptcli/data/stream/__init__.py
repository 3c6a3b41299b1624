"""Streaming prepared shards into training and evaluation batches.

A :class:`~adaptcli.data.stream.shards.ShardFolder` (a folder and its manifest, read once) is what
every entry takes. ``train`` (``train_loader``, ``steps_per_epoch``) and ``evaluation``
(``eval_loader``) build the pipelines from ``tar_reader`` (samples of a shard), ``samples``
(``SampleDecoder``: one sample's frames, crop and label; ``sampling``, ``transforms``,
``clip_augment``), ``health`` (damaged shards and samples) and ``workers`` (seeds and signals per
worker); ``batch`` collates samples into a :class:`~adaptcli.data.stream.batch.Batch`, whose encoded
frames ``batch_decode`` decodes on the training device. ``spec.StreamSpec`` is what the model asks
of the stream; ``counts`` checks a split's sample count against its shards. Nothing is imported here.
"""
