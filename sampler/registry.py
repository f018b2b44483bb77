"""Every strategy by its stored name, and the way a stored run's parameters become a strategy again."""

from __future__ import annotations

from typing import Any, Mapping

from sklearn.base import clone

from sampler.audit import AuditSample
from sampler.base import QueryStrategy
from sampler.baselines import RandomSampling, UncertaintySampling
from sampler.blend import Blend
from sampler.cluster_margin import ClusterMargin
from sampler.cold_start import ColdStart
from sampler.combined import Combined
from sampler.core_set import KCenterGreedy
from sampler.range_conflict import RangeConflict
from sampler.search import MoreLikeThese
from sampler.stratified import Stratified
from sampler.typiclust import TypiClust
from sampler.uncertain_diverse import UncertainDiverse

# A run rebuilds its strategy with STRATEGIES[run.strategy](**run.params).
STRATEGIES: dict[str, type[QueryStrategy]] = {cls.name: cls for cls in (
    UncertainDiverse, UncertaintySampling, RandomSampling, KCenterGreedy, TypiClust, ClusterMargin, Combined,
    Stratified, ColdStart, MoreLikeThese, Blend, AuditSample, RangeConflict)}


def strategy_spec(strategy: QueryStrategy) -> dict[str, Any]:
    """``{"strategy": name, "params": {...}}``: how a nested strategy (``Stratified.inner``) is stored."""
    return {"strategy": strategy.name, "params": strategy.get_params(deep=False)}


def build_strategy(spec: Any, *, parameter: str = "strategy") -> QueryStrategy:
    """A fresh strategy from an instance (cloned), a registered name or ``{"strategy": name, "params": {...}}``."""
    if isinstance(spec, QueryStrategy):
        return clone(spec)
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and set(spec) <= {"strategy", "params"} and "strategy" in spec:
        name, params = spec["strategy"], dict(spec.get("params") or {})
    else:
        raise ValueError(f"{parameter} must be a strategy, a strategy name or {{'strategy': name, 'params': {{...}}}}, "
                         f"got {spec!r}")
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} in {parameter}; expected one of {sorted(STRATEGIES)}")
    try:
        return STRATEGIES[name](**params)
    except TypeError as e:
        raise ValueError(f"bad parameters for strategy {name!r} in {parameter}: {e}") from e
