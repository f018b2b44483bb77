"""Run a strategy against the store and record the batch: the one place sampling touches persistence."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import clone

from sampler.base import QueryStrategy, check_budget, resolve_seed
from store.schema import ModelVersion, SamplingRun, Selection
from store.store import Store, StoreError


def _jsonable(value: Any) -> Any:
    """Strategy parameters as JSON (tuples become lists, numpy scalars plain numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"strategy parameter value {value!r} cannot be stored as JSON")


def sample(store: Store, strategy: QueryStrategy, budget: int, *,
           model_version: ModelVersion | str | int | None = None,
           embedding_space: Optional[str] = None) -> tuple[SamplingRun, list[Selection]]:
    """Pick a batch from the pool, store it as a sampling run with every pick's reason, return both.

    The pool is scored by ``model_version`` (default: the store's current one, i.e. the newest
    fine-tuned head once there is one); embeddings come from ``embedding_space`` (default: that
    model's space). Clips already selected, pushed or labelled are never picked again. The strategy
    is not modified: a copy runs with a concrete seed, which is recorded on the run together with
    its parameters, so ``STRATEGIES[run.strategy](**run.params)`` rebuilds it.
    """
    budget = check_budget(budget)
    if model_version is None:
        mv = store.current_model_version()
        if mv is None:
            raise StoreError("the store holds no scored clips yet: ingest some audio first")
    elif isinstance(model_version, ModelVersion):
        mv = model_version
    else:
        mv = store.model_version(model_version)
    space = embedding_space or mv.embedding_space

    strat = clone(strategy)
    seed: Optional[int] = None
    if "random_state" in strat.get_params():
        seed = resolve_seed(strategy.get_params()["random_state"])  # draws from the caller's Generator
        strat.set_params(random_state=seed)

    pool = store.pool(mv)
    embeddings = store.embeddings(space)
    picks = strat.query(pool, embeddings, budget, exclude=store.excluded_clip_ids())

    run = SamplingRun(strategy=strat.name or type(strat).__name__, params=_jsonable(strat.get_params()),
                      seed=seed, budget=budget, model_version_id=mv.id)
    selections = [Selection(clip_id=p.clip_id, rank=p.rank, score=p.score, cluster=p.cluster,
                            stratum=p.stratum, reason=p.reason) for p in picks]
    run = store.add_sampling_run(run, selections)
    return run, selections
