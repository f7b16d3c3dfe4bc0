"""Datasets (folder-per-class, EuroSAT-MS, BigEarthNet), batch transforms and splits."""
