"""Registers adaptcli's own architectures with timm (filled in by the backbones issue)."""
