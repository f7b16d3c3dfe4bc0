"""Training methods behind one interface: ``list_methods()``, ``create_method()``, ``build_inference_model()``."""

from .base import Method, MethodConfig, Stage  # noqa: F401
from .registry import build_inference_model, create_method, get_method, list_methods, register_method  # noqa: F401
from . import pretrain  # noqa: F401  (registers the methods)
