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
=====================  =================================================================

Each pick carries its score, cluster, stratum and a reason sentence. ``sample`` runs a strategy
against the store and records the batch with the strategy's parameters and seed; ``replay``
re-runs a recorded batch. The algorithms are public pure functions beside their classes
(``k_greedy_center``, ``typiclust``, ``lazy_greedy``, ``allocate_quotas``, ...).
"""

from sampler.base import (DEFAULT_MIN_CANDIDATES, Choice, Pick, QueryContext, QueryStrategy, SamplerWarning,
                          available_indices, candidate_count, most_uncertain)
from sampler.baselines import RandomSampling, UncertaintySampling
from sampler.blend import Blend, split_budget
from sampler.cluster_margin import ClusterMargin, cluster_margin_order
from sampler.cold_start import ColdStart, metadata_pool
from sampler.combined import WEIGHT_NAMES, Combined, check_weights, stratum_candidates
from sampler.core_set import KCenterGreedy, k_greedy_center
from sampler.exclusion import NEAR_DUPLICATE_METRICS, NearDuplicateGuard, near_duplicate_distance
from sampler.greedy import GreedyStep, lazy_greedy
from sampler.registry import STRATEGIES, build_strategy, strategy_spec
from sampler.run import Replay, replay, sample
from sampler.search import MoreLikeThese, nearest_neighbours
from sampler.strata import (HEMISPHERES, QUOTA_MODES, STRATA_COLUMNS, allocate_quotas, factorize, stratum_codes,
                            stratum_keys, stratum_weights)
from sampler.stratified import Stratified
from sampler.typiclust import TypiClust, typicality, typiclust
from sampler.uncertain_diverse import UncertainDiverse, relabel_by_first, round_robin_fill, stratified_quotas
from sampler.uncertainty import (POOL_MEASURES, UNCERTAINTY_MEASURES, uncertainty_from_matrix,
                                 uncertainty_from_probabilities, uncertainty_scores)
from sampler.vectors import MatrixReader, WorkingSpace, kmeans, kmeans_labels, l2_normalize, nearest

__all__ = [
    "DEFAULT_MIN_CANDIDATES", "HEMISPHERES", "NEAR_DUPLICATE_METRICS", "POOL_MEASURES", "QUOTA_MODES",
    "STRATA_COLUMNS", "STRATEGIES", "UNCERTAINTY_MEASURES", "WEIGHT_NAMES",
    "Blend", "Choice", "ClusterMargin", "ColdStart", "Combined", "GreedyStep", "KCenterGreedy", "MatrixReader",
    "MoreLikeThese", "NearDuplicateGuard", "Pick", "QueryContext", "QueryStrategy", "RandomSampling", "Replay",
    "SamplerWarning", "Stratified", "TypiClust", "UncertainDiverse", "UncertaintySampling", "WorkingSpace",
    "allocate_quotas", "available_indices", "build_strategy", "candidate_count", "check_weights",
    "cluster_margin_order", "factorize", "k_greedy_center", "kmeans", "kmeans_labels", "l2_normalize",
    "lazy_greedy", "metadata_pool", "most_uncertain", "near_duplicate_distance", "nearest", "nearest_neighbours",
    "relabel_by_first", "replay", "round_robin_fill", "sample", "split_budget", "strategy_spec", "stratified_quotas",
    "stratum_candidates", "stratum_codes", "stratum_keys", "stratum_weights", "typicality", "typiclust",
    "uncertainty_from_matrix", "uncertainty_from_probabilities", "uncertainty_scores",
]
