"""Backbones: timm models, adaptcli's registered video ViTs, local checkpoints."""
