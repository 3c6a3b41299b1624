"""Datasets: prepare into WebDataset shards, stream them back."""
