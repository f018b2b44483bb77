"""The workbench's default strategy, chosen by the label-efficiency benchmark (bench/label_efficiency.py)."""

from __future__ import annotations

from sampler.base import QueryStrategy
from sampler.uncertain_diverse import UncertainDiverse

DEFAULT_STRATEGY = "uncertain_diverse"


def default_strategy(random_state=None) -> QueryStrategy:
    """A fresh instance of the default strategy with its default parameters."""
    return UncertainDiverse(random_state=random_state)
