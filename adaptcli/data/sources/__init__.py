"""Dataset readers, one module per dataset, each turning a downloaded layout into
:class:`~adaptcli.data.sources.base.Listing` s; ``registry`` lists the modules (see its docstring to add one)."""
