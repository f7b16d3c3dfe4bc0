"""Inference over rasters, the training loop, metrics and evaluation."""
