"""Raster windows, tile grids and output writers."""
