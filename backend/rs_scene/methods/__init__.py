"""Training methods behind one interface: ``list_methods``, ``create_method``, ``build_inference_model``."""

# ruff: noqa: F401, I001  (imports below register the methods and the backbones only they use)
from .base import Method, MethodConfig, Stage
from .registry import build_inference_model, create_method, get_method, list_methods, register_method
from . import pretrain
from . import bwms, ddrl_am, pskd, scl
from ..models import bwms as _bwms_backbones, mobilenet as _mobilenet_backbone
