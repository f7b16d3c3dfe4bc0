"""RS Scene backend: tiled scene classification of rasters, attention heatmaps, training, local service."""

__version__ = "0.1.0"
