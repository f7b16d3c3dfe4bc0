"""Losses of the methods, each a small ``nn.Module`` that validates its arguments and cites its paper."""

from .center import CenterLoss  # noqa: F401
from .distill import MixupKDLoss, PairwiseKDLoss, kd_kl  # noqa: F401
from .supcon import SupConLoss  # noqa: F401
