"""Batch selection: which clips an expert should label next, and why.

Every strategy is a small class (scikit-learn style: the constructor stores parameters, ``query``
validates, then selects) with one method for all of them::

    query(pool, embeddings, budget, *, exclude=(), probabilities=None) -> list[Pick]

and is registered in ``STRATEGIES`` under the name stored with its runs:

=====================  =================================================================
``uncertain_diverse``  most uncertain, spread over k-means clusters, equal strata quotas
``uncertainty``        the most uncertain clips (any measure in ``UNCERTAINTY_MEASURES``)
``random``             seeded uniform sample: the baseline to beat
``kcenter``            core-set: farthest-first from labelled and picked clips
``typiclust``          the most typical clip of each of the largest clusters
``cluster_margin``     lowest-margin candidates, small clusters first, random inside
``combined``           greedy w_u x uncertainty + w_d x diversity + w_b x stratum balance
``stratified``         quotas per stratum (equal, proportional, weighted, minimum), any
                       strategy inside each stratum
``cold_start``         representative batch with no labels or scores: typical clips
                       within proportional strata quotas
``more_like_these``    nearest neighbours of example clips (targeted search)
``blend``              shares of one batch from several strategies (exploit + explore)
``audit``              random within top-1 score bins: labels that estimate precision
``range_conflict``     confident detections of species the range model calls absent at
                       the clip's site-week, or a geofence does not allow in its country,
                       then the most uncertain
=====================  =================================================================

Each pick carries its score, cluster, stratum and a reason sentence. ``sample`` runs a strategy
against the store and records the batch with the strategy's parameters and seed; ``replay``
re-runs a recorded batch. The algorithms are public pure functions beside their classes
(``k_greedy_center``, ``typiclust``, ``lazy_greedy``, ``allocate_quotas``, ...).

The package loads lazily: ``import sampler.parameters`` (the strategy parameter tables, which the
command line's parser reads) loads neither scikit-learn nor FAISS; the first name taken from the
package itself loads every strategy (``sampler._api``).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sampler._api import *  # noqa: F403

__all__ = [
    "AuditSample",
    "DEFAULT_MIN_CANDIDATES", "HEMISPHERES", "NEAR_DUPLICATE_METRICS", "POOL_MEASURES", "QUOTA_MODES",
    "STRATA_COLUMNS", "STRATEGIES", "UNCERTAINTY_MEASURES", "WEIGHT_NAMES",
    "Blend", "Choice", "ClusterMargin", "ColdStart", "Combined", "GreedyStep", "KCenterGreedy", "MatrixReader",
    "MoreLikeThese", "NearDuplicateGuard", "Pick", "QueryContext", "QueryStrategy", "RandomSampling", "RangeConflict",
    "Replay", "SamplerWarning", "Stratified", "TypiClust", "UncertainDiverse", "UncertaintySampling", "WorkingSpace",
    "allocate_quotas", "available_indices", "build_strategy", "candidate_count", "check_weights",
    "cluster_margin_order", "factorize", "k_greedy_center", "kmeans", "kmeans_labels", "l2_normalize",
    "lazy_greedy", "metadata_pool", "most_uncertain", "near_duplicate_distance", "nearest", "nearest_neighbours",
    "range_conflicts", "relabel_by_first", "replay", "round_robin_fill", "sample", "split_budget", "strategy_spec",
    "stratified_quotas", "stratum_candidates", "stratum_codes", "stratum_keys", "stratum_weights", "typicality", "typiclust",
    "uncertainty_from_matrix", "uncertainty_from_probabilities", "uncertainty_scores",
]


def __getattr__(name: str) -> Any:
    """The first exported name asked for loads them all (as an eager ``__init__`` would)."""
    if name not in __all__:
        raise AttributeError(f"module 'sampler' has no attribute {name!r}")
    from sampler import _api

    globals().update({n: getattr(_api, n) for n in __all__ if n != "typiclust"})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """``sampler.typiclust`` is the function (as the eager package had it), though a submodule has its name: the
    import system's setting of the submodule attribute is ignored (``sys.modules`` still holds the module)."""

    @property
    def typiclust(self):
        from sampler.typiclust import typiclust

        return typiclust

    @typiclust.setter
    def typiclust(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package
