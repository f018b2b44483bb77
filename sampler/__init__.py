"""Batch selection: which clips an expert should label next, and why.

A strategy is a small class (constructor stores parameters, ``query`` validates then selects);
``sampler.run.sample`` runs one against the store and records the batch.
"""

from sampler.base import (STRATA_COLUMNS, UNCERTAINTY_MEASURES, Pick, QueryStrategy, SamplerWarning,
                          stratum_keys, uncertainty_scores)
from sampler.uncertain_diverse import (UncertainDiverse, kmeans_labels, l2_normalize, most_uncertain,
                                       round_robin_fill, stratified_quotas)
from sampler.run import sample

# Every strategy by its stored name: a run rebuilds its strategy with STRATEGIES[run.strategy](**run.params).
STRATEGIES: dict[str, type[QueryStrategy]] = {UncertainDiverse.name: UncertainDiverse}


__all__ = ["STRATA_COLUMNS", "STRATEGIES", "UNCERTAINTY_MEASURES", "Pick", "QueryStrategy", "SamplerWarning",
           "UncertainDiverse", "kmeans_labels", "l2_normalize", "most_uncertain", "round_robin_fill", "sample",
           "stratified_quotas", "stratum_keys", "uncertainty_scores"]
