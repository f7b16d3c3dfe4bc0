"""Backbones and classifiers (nn.Modules only), created by name through the registry."""

from . import bwms, efficientnet_lite, mobilenet, resnet  # noqa: F401  (registers the backbones)
from .classifier import SceneClassifier  # noqa: F401
from .registry import create_backbone, list_backbones, register_backbone  # noqa: F401
