"""Everything ``sampler`` exports, imported at once (scikit-learn and FAISS load here); see ``sampler.__init__``."""

from sampler.base import (DEFAULT_MIN_CANDIDATES, Choice, Pick, QueryContext, QueryStrategy, SamplerWarning,
                          available_indices, candidate_count, most_uncertain)
from sampler.audit import AuditSample
from sampler.baselines import RandomSampling, UncertaintySampling
from sampler.blend import Blend, split_budget
from sampler.cluster_margin import ClusterMargin, cluster_margin_order
from sampler.cold_start import ColdStart, metadata_pool
from sampler.combined import WEIGHT_NAMES, Combined, check_weights, stratum_candidates
from sampler.core_set import KCenterGreedy, k_greedy_center
from sampler.exclusion import NEAR_DUPLICATE_METRICS, NearDuplicateGuard, near_duplicate_distance
from sampler.greedy import GreedyStep, lazy_greedy
from sampler.range_conflict import RangeConflict, range_conflicts
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
