"""Attention heatmaps: Grad-CAM and friends (pytorch-grad-cam), with a closed-form Grad-CAM fast path."""
