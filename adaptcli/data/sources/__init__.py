"""Dataset readers: each turns a downloaded layout into a :class:`~adaptcli.data.sources.base.Listing`."""
