"""Run a strategy against the store and record the batch; replay a recorded one.

The one place sampling touches persistence: every run is stored with its strategy name, its
parameters (JSON, nested strategies as ``{"strategy": name, "params": {...}}``), the seed it used
and every pick's reason, so any past batch can be explained and reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

import numpy as np
from sklearn.base import clone

from sampler.base import Pick, QueryStrategy, check_budget, resolve_seed
from sampler.registry import STRATEGIES
from sampler.uncertainty import is_multi_label
from store.locks import LockName
from store.roles import Ledger, Records, Vectors
from store.schema import ModelVersion, SamplingRun, Selection
from store.errors import UnknownMatrix
from store.store import Pool, Store, StoreError


def _jsonable(value: Any) -> Any:
    """Strategy parameters as JSON (tuples become lists, numpy scalars plain numbers, strategies specs)."""
    if isinstance(value, QueryStrategy):
        return {"strategy": value.name, "params": _jsonable(value.get_params(deep=False))}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"strategy parameter value {value!r} cannot be stored as JSON")


def _pin_seeds(strategy: QueryStrategy) -> None:
    """Nested strategies given a Generator get a concrete seed, so the stored parameters replay."""
    for key, value in strategy.get_params(deep=False).items():
        if isinstance(value, QueryStrategy):
            inner = value.get_params(deep=False).get("random_state", None)
            if inner is not None:
                value.set_params(random_state=resolve_seed(inner))
            _pin_seeds(value)


def _resolve_model(store: Records, model_version: ModelVersion | str | int | None) -> ModelVersion:
    if model_version is None:
        mv = store.current_model_version()
        if mv is None:
            raise StoreError("the store holds no scored clips yet: ingest some audio first")
        return mv
    if isinstance(model_version, ModelVersion):
        return model_version
    return store.model_version(model_version)


def _excluded(store: Ledger) -> np.ndarray:
    """Clips never to pick again, as a sorted int64 array (no Python set of millions of ids)."""
    return store.excluded_clip_ids_array()


def _probabilities(store: Vectors, mv: ModelVersion) -> Any:
    """The model's probability matrix, or None when the store holds none for it."""
    try:
        return store.probabilities(mv)
    except UnknownMatrix:
        return None


def labels_are_multi(store: Ledger, before: Any = None) -> Optional[bool]:
    """Whether the experts' labels (each clip's latest active answer; those given before ``before`` only)
    hold several species per clip often enough to read sigmoid outputs per label (``Pool.multi_label``)."""
    latest: dict[int, Any] = {}
    for a in store.annotations():
        if before is not None and a.created_at is not None and _naive(a.created_at) > _naive(before):
            continue
        if a.clip_id not in latest or (a.updated_at or a.created_at) >= (latest[a.clip_id].updated_at
                                                                          or latest[a.clip_id].created_at):
            latest[a.clip_id] = a
    return is_multi_label([list(a.labels or []) for a in latest.values()])


def _naive(t: Any) -> Any:
    return t.replace(tzinfo=None) if getattr(t, "tzinfo", None) is not None else t


def query_store(store: Store, strategy: QueryStrategy, budget: int, model_version: ModelVersion,
                embedding_space: Optional[str] = None) -> tuple[list[Pick], Pool, np.ndarray]:
    """Run ``strategy`` on the store's pool under ``model_version`` and write nothing: (picks, pool, excluded ids).

    The pool, the embeddings of ``embedding_space`` (default: the model's), the clips never to pick
    again and the model's probability matrix: exactly what ``sample`` gives a strategy, so a preview
    (the app's) picks what a sampling run would.
    """
    pool = store.pool(model_version)
    pool.multi_label = labels_are_multi(store)
    excluded = _excluded(store)
    picks = strategy.query(pool, store.embeddings(embedding_space or model_version.embedding_space), budget,
                           exclude=excluded, probabilities=_probabilities(store, model_version))
    return picks, pool, excluded


def sample(store: Store, strategy: QueryStrategy, budget: int, *,
           model_version: ModelVersion | str | int | None = None,
           embedding_space: Optional[str] = None) -> tuple[SamplingRun, list[Selection]]:
    """Pick a batch from the pool, store it as a sampling run with every pick's reason, return both.

    The pool is scored by ``model_version`` (default: the store's current one, i.e. the newest
    fine-tuned head once there is one); embeddings come from ``embedding_space`` (default: that
    model's space); the model's probability matrix is passed for measures that need full rows.
    Clips already selected, pushed or labelled are never picked again. The strategy is not
    modified: a copy runs with a concrete seed, which is recorded on the run together with its
    parameters, so ``STRATEGIES[run.strategy](**run.params)`` rebuilds it (``replay`` does).
    """
    run, selections, _ = _sample(store, strategy, budget, model_version=model_version,
                                 embedding_space=embedding_space)
    return run, selections


def _sample(store: Store, strategy: QueryStrategy, budget: int, *,
            model_version: ModelVersion | str | int | None = None,
            embedding_space: Optional[str] = None) -> tuple[SamplingRun, list[Selection], Pool]:
    """``sample``, and the pool it picked from (read once: at a billion windows it is gigabytes)."""
    budget = check_budget(budget)
    mv = _resolve_model(store, model_version)
    space = embedding_space or mv.embedding_space

    strat = clone(strategy)
    seed: Optional[int] = None
    if "random_state" in strat.get_params(deep=False):
        seed = resolve_seed(strategy.get_params(deep=False)["random_state"])  # draws from the caller's Generator
        strat.set_params(random_state=seed)
    _pin_seeds(strat)
    params = _jsonable(strat.get_params(deep=False))

    unscored = store.unscored_clip_ids(mv)
    if unscored.size:
        raise StoreError(f"{unscored.size} clip(s) (e.g. clip {int(unscored[0])}) are not scored by model "
                         f"{mv.name!r} yet, so they would be left out of its pool: score them first "
                         f"(finetune.score_new_clips; `workbench sample` does it for you)")
    # two samplings at once would both pick from the same unselected clips: one waits for the other
    with store.lock(LockName.SELECTION):
        picks, pool, _ = query_store(store, strat, budget, mv, space)
        run = SamplingRun(strategy=strat.name or type(strat).__name__, params=params, seed=seed, budget=budget,
                          model_version_id=mv.id, frame=getattr(strat, "frame_", None))
        selections = [Selection(clip_id=p.clip_id, rank=p.rank, score=p.score, cluster=p.cluster,
                                stratum=p.stratum, reason=p.reason) for p in picks]
        run = store.add_sampling_run(run, selections)
    return run, selections, pool


#: score_new_clips(store, model_version, progress=progress(done, total)) -> clips scored: a head scoring the
#: clips ingested after it was trained (``finetune.scoring.score_new_clips``; the sampler knows no heads)
ScoreNewClips = Callable[..., int]


@dataclass
class SampleResult:
    """A stored batch, and how many new clips the model scored before it was picked."""

    run: SamplingRun
    picks: list[Selection]
    scored: int = 0
    partial: Optional["PartialWindows"] = None  # the batch's partial windows beside the pool's share


def sample_batch(store: Store, strategy: QueryStrategy, budget: int, *,
                 model_version: ModelVersion | str | int | None = None,
                 score_new_clips: Optional[ScoreNewClips] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> SampleResult:
    """What ``workbench sample`` and the app's Save run: new clips scored by the model first, then ``sample``.

    ``sample`` refuses a pool the model has not scored completely; ``score_new_clips`` (called with
    ``progress(done, total)``) makes it complete, so clips ingested after a fine-tune can be picked.
    """
    mv = _resolve_model(store, model_version)
    scored = score_new_clips(store, mv, progress=progress) if score_new_clips is not None else 0
    run, picks, pool = _sample(store, strategy, budget, model_version=mv)
    return SampleResult(run=run, picks=picks, scored=int(scored), partial=_partial(pool, picks))


@dataclass
class Replay:
    """A stored run re-run: its picks now, next to the picks stored then."""

    run: SamplingRun
    picks: list[Pick]
    stored: list[Selection]

    @property
    def identical(self) -> bool:
        """Same clips in the same order, with the same reasons."""
        return [(p.clip_id, p.rank, p.reason) for p in self.picks] == \
            [(s.clip_id, s.rank, s.reason) for s in self.stored]

    def differences(self, limit: int = 5) -> list[str]:
        """The first ranks at which the replay and the stored batch disagree, as sentences."""
        out = []
        n = max(len(self.picks), len(self.stored))
        for r in range(n):
            a = self.picks[r] if r < len(self.picks) else None
            b = self.stored[r] if r < len(self.stored) else None
            if a is None or b is None or (a.clip_id, a.reason) != (b.clip_id, b.reason):
                out.append(f"rank {r + 1}: stored clip {b.clip_id if b else '-'}, replayed clip "
                           f"{a.clip_id if a else '-'}")
                if len(out) == limit:
                    break
        return out


def _subset(pool: Pool, mask: np.ndarray) -> Pool:
    values = {f.name: getattr(pool, f.name) for f in fields(pool) if f.init}
    keep = lambda k, v: k == "model_version" or v is None or np.ndim(v) == 0  # noqa: E731 (per-pool, not per-clip)
    return Pool(**{k: (v if keep(k, v) else np.asarray(v)[mask]) for k, v in values.items()})


def replay(store: Store, run_id: int, *, embedding_space: Optional[str] = None) -> Replay:
    """Re-run a stored run's strategy, parameters and seed on the pool as it was; compare the batches.

    The pool state is rebuilt from the store: clips of recordings added after the run are left
    out, and the exclusions are today's minus the clips this run and later runs selected. That is
    exact as long as the model's scores were not rewritten and no clip was pushed or labelled
    outside a sampling run since. ``embedding_space`` must be given if the run used a non-default
    one (runs do not record it yet). Nothing is written to the store.
    """
    runs = {r.id: r for r in store.sampling_runs()}
    run = runs.get(int(run_id))
    if run is None:
        known = f"runs {min(runs)}..{max(runs)}" if runs else "no runs"
        raise StoreError(f"no sampling run {run_id} in this store (it holds {known})")
    if run.strategy not in STRATEGIES:
        raise StoreError(f"sampling run {run_id} used strategy {run.strategy!r}, which this version does not know; "
                         f"known: {sorted(STRATEGIES)}")
    try:
        strategy = STRATEGIES[run.strategy](**run.params)
    except TypeError as e:
        raise StoreError(f"sampling run {run_id}'s parameters no longer fit strategy {run.strategy!r}: {e}") from e
    if run.model_version_id is None:
        raise StoreError(f"sampling run {run_id} records no model version; it cannot be replayed")
    mv = store.model_version(int(run.model_version_id))
    pool = store.pool(mv)
    pool.multi_label = labels_are_multi(store, before=run.created_at)
    late = [r.id for r in store.recordings() if r.created_at is not None and run.created_at is not None
            and r.created_at > run.created_at]
    if late:
        pool = _subset(pool, ~np.isin(pool.recording_id, np.asarray(late, dtype=np.int64)))
    selections = {rid: store.selections(rid) for rid in runs if rid >= run.id}
    later = [s.clip_id for picks in selections.values() for s in picks]
    exclude = np.setdiff1d(_excluded(store), np.asarray(later, dtype=np.int64))
    picks = strategy.query(pool, store.embeddings(embedding_space or mv.embedding_space), run.budget,
                           exclude=exclude, probabilities=_probabilities(store, mv))
    return Replay(run=run, picks=picks, stored=selections[run.id])


@dataclass(frozen=True)
class PartialWindows:
    """How many picks of a run are partial (zero-padded) audio windows, beside the pool's share."""

    picked: int
    batch: int
    pool_share: Optional[float]

    def statement(self) -> str:
        pool = f" (pool: {self.pool_share:.0%})" if self.pool_share is not None else ""
        return f"{self.picked} of {self.batch} picks are partial windows (a recording's padded tail){pool}"


def partial_windows(store: Store, run: SamplingRun) -> PartialWindows:
    """The share of a run's picks that are partial windows: their uncertainty counts only for their audio
    (``sampler.uncertainty.uncertainty_scores``), and a lead should see how many the batch still holds."""
    picks = store.selections(run.id)
    mv = store.model_version(run.model_version_id) if run.model_version_id is not None else None
    return _partial(store.pool(mv) if mv is not None else None, picks)


def _partial(pool: Optional[Pool], picks: list[Selection]) -> PartialWindows:
    content = getattr(pool, "content", None)
    if pool is None or content is None:
        return PartialWindows(0, len(picks), None)
    ids = np.asarray(pool.clip_id, dtype=np.int64)
    wanted = np.array([p.clip_id for p in picks], dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
    pos = pos[ids[pos] == wanted] if len(ids) else pos[:0]  # a pick whose clip left the pool counts for nothing
    partial = np.asarray(content) < 0.999
    return PartialWindows(int(partial[pos].sum()), len(picks), float(partial.mean()) if len(pool) else None)

