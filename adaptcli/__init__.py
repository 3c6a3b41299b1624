"""adaptcli: parameter-efficient adaptation of Vision Transformers from the command line."""

__version__ = "0.1.0"
