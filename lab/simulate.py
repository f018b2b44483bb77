"""Replay active learning where known labels answer instead of an expert: does a strategy beat random?

For each seed the labelled pool is split once (stratified, ``test_size`` held out) and one random
initial set is drawn; every strategy starts from that same split and set. A strategy's rounds use
only the labels it has paid for: the head (the very ``ClassifierHead`` that ``finetune`` trains, so
the lab predicts what a real round does) is fitted on them, scores the rest of the training part,
and the strategy picks the next batch from those scores and the embeddings, exactly as ``workbench
sample`` would. After every round the head is judged on the held-out part: macro recall (as
``finetune`` reports it), mean average precision and worst-stratum recall.

Random is always run as the reference: the summary says, per strategy, the area under its learning
curve, its final score, and how many labels it needed to reach random's final score and 90 % of the
score of a head trained on every training label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score

from finetune.evaluate import evaluate, split_key, stratified_split
from finetune.head import ClassifierHead, head_for
from lab.peers import PEERS, PeerStrategy, is_peer, labels_vector, peer_strategy
from lab.pool import LabeledPool, from_workspace, load_pool_file
from sampler.base import QueryStrategy
from sampler.registry import STRATEGIES, build_strategy, strategy_spec
from sampler.uncertainty import is_multi_label
from store import SimulationRun, Store
from store.matrices import MatrixView
from store.roles import Ledger
from store.schema import ModelVersion
from store.store import Pool
from store.uncertainty import score_rows

#: progress(done, total, message)
Progress = Callable[[int, int, str], None]

REFERENCE = "random"
#: What ``strategies=["default"]`` means: the workbench's default strategy (see sampler.defaults).
DEFAULT_ALIAS = "default"
#: Strategies a simulation can run: every registered one but targeted search (it needs example clips).
SIMULATED = tuple(name for name in STRATEGIES if name != "more_like_these")


@dataclass
class CurvePoint:
    """The head after one round of a strategy, judged on the held-out clips."""

    labels: int
    macro_recall: float
    mean_ap: float
    worst_stratum_recall: Optional[float]
    query_seconds: float = 0.0  # time the strategy took to pick the batch that followed (0 for the last)

    def as_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "macro_recall": self.macro_recall, "map": self.mean_ap,
                "worst_stratum_recall": self.worst_stratum_recall, "query_seconds": self.query_seconds}


@dataclass
class SimulationResult:
    """Learning curves per strategy and seed, and what they say against random."""

    params: dict[str, Any]
    curves: dict[str, dict[int, list[CurvePoint]]]
    full_data: dict[int, float]  # per seed: macro recall of a head trained on the whole training part
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def mean_curve(self, strategy: str, metric: str = "macro_recall") -> tuple[np.ndarray, np.ndarray]:
        """(labels, mean over seeds of ``metric``) at the label counts every seed reached."""
        runs = list(self.curves[strategy].values())
        n = min(len(r) for r in runs)
        labels = np.array([p.labels for p in runs[0][:n]], dtype=np.int64)
        values = np.array([[getattr(p, metric) if metric != "map" else p.mean_ap for p in r[:n]] for r in runs],
                          dtype=np.float64)
        return labels, values.mean(axis=0)

    def to_json(self) -> dict[str, Any]:
        """The simulation as JSON: ``summary``, ``curves`` ([labels, macro_recall] pairs) and the details."""
        return {"params": self.params, "summary": self.summary,
                "curves": {s: {str(seed): [[p.labels, p.macro_recall] for p in pts] for seed, pts in runs.items()}
                           for s, runs in self.curves.items()},
                "curves_detail": {s: {str(seed): [p.as_dict() for p in pts] for seed, pts in runs.items()}
                                  for s, runs in self.curves.items()},
                "full_data_macro_recall": {str(k): v for k, v in self.full_data.items()},
                "seconds": self.seconds}


def parse_budgets(text: str) -> tuple[int, int, int]:
    """``START:STOP:STEP`` (labels at the start, at the end, per round) as three checked ints."""
    parts = str(text).split(":")
    try:
        start, stop, step = (int(p) for p in parts)
    except ValueError as e:
        raise ValueError(f"budgets must be START:STOP:STEP (three integers, e.g. 20:200:20), got {text!r}") from e
    check_budgets((start, stop, step))
    return start, stop, step


def check_budgets(budgets: Sequence[int]) -> tuple[int, int, int]:
    if len(budgets) != 3 or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in budgets):
        raise ValueError(f"budgets must be (start, stop, step) integers, got {budgets!r}")
    start, stop, step = (int(b) for b in budgets)
    if start < 1 or step < 1 or stop <= start:
        raise ValueError(f"budgets need start >= 1 (the random initial set), step >= 1 and stop > start; got "
                         f"{start}:{stop}:{step}")
    return start, stop, step


def resolve_strategies(strategies: Sequence[Any] | dict[str, Any]) -> dict[str, QueryStrategy]:
    """Strategies by display name; ``"default"`` is the workbench's default; random is always included.

    A list names strategies (or gives instances / specs); a dict maps display names to them, to compare
    variants of one strategy (``{"kcenter on margin": KCenterGreedy(candidates="uncertain")}``).
    """
    from sampler.defaults import default_strategy

    out: dict[str, QueryStrategy] = {}
    if isinstance(strategies, dict):
        for label, spec in strategies.items():
            out[str(label)] = default_strategy() if spec == DEFAULT_ALIAS else build_strategy(spec)
        return out if REFERENCE in out else {REFERENCE: build_strategy(REFERENCE), **out}
    for spec in strategies:
        if spec == DEFAULT_ALIAS:
            strat, name = default_strategy(), DEFAULT_ALIAS
        elif is_peer(spec):  # scikit-activeml's, under the same protocol (lab.peers)
            strat, name = peer_strategy(spec), spec
        else:
            if isinstance(spec, str) and spec not in SIMULATED:
                raise ValueError(f"unknown strategy {spec!r} for a simulation; expected some of "
                                 f"{[DEFAULT_ALIAS, *SIMULATED]} or skactiveml:NAME ({', '.join(PEERS)})")
            strat = build_strategy(spec)
            name = spec if isinstance(spec, str) else strat.name
        if name in out:
            raise ValueError(f"strategy {name!r} is listed twice")
        out[name] = strat
    if REFERENCE not in out:
        out = {REFERENCE: build_strategy(REFERENCE), **out}
    return out


def _metrics(head: ClassifierHead, x: np.ndarray, truth: np.ndarray, classes: Sequence[str],
             strata: np.ndarray) -> tuple[float, float, Optional[float]]:
    probs = head.predict_proba(x)
    m = evaluate(truth, head.predict(x), classes, strata)  # as finetune judges it: 0.5 per class, or the argmax
    aps = [average_precision_score(truth[:, j], probs[:, j]) for j in range(truth.shape[1]) if truth[:, j].any()]
    return float(m.get("macro_recall", 0.0)), float(np.mean(aps)) if aps else 0.0, m.get("worst_site_recall")


def _pool(ids: np.ndarray, probs: np.ndarray, classes: Sequence[str], lp: LabeledPool, rows: np.ndarray,
          output_type: str, multi_label: Optional[bool] = None) -> Pool:
    """The training part as the sampler sees a store's pool: scores from the head's probabilities;
    ``multi_label`` as the labels paid for so far say (``sampler.uncertainty.is_multi_label``)."""
    scores = score_rows(probs)
    labels = np.array(classes, dtype=object)
    mv = ModelVersion(name="simulated-head", kind="classifier", embedding_space="simulated", dim=len(classes),
                      labels=list(classes), output_type=output_type)
    return Pool(model_version=mv, clip_id=ids, recording_id=np.zeros(ids.size, dtype=np.int64),
                site=lp.strata[rows], device=np.full(ids.size, "", dtype=object), start_time=lp.times[rows],
                max_entropy=scores["max_entropy"], mean_entropy=scores["mean_entropy"], top1=scores["top1"],
                margin=scores["margin"], top_label=labels[scores["top_index"]],
                multi_label=multi_label)


def simulate(pool: LabeledPool, strategies: Sequence[Any] = ("default",), *, seeds: int | Sequence[int] = 3,
             budgets: Sequence[int] = (20, 120, 20), test_size: float = 0.3, C: float = 1.0,
             progress: Optional[Progress] = None) -> SimulationResult:
    """Replay active learning on ``pool`` for every strategy and seed; see the module docstring.

    The head is the one ``finetune`` would train on these labels: softmax when the pool's model has
    softmax outputs and every clip carries one label, else one sigmoid per class; the strategies'
    default uncertainty measures follow it.
    """
    started = time.perf_counter()
    if not isinstance(test_size, (int, float)) or not 0 < float(test_size) < 1:  # before the sizes it implies
        raise ValueError(f"--test-size must be a fraction between 0 and 1 (exclusive), e.g. 0.3; got {test_size!r}")
    start, stop, step = check_budgets(tuple(budgets))
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list or (isinstance(seeds, (int, np.integer)) and seeds < 1):
        raise ValueError(f"seeds must be a positive number of seeds or a list of seeds, got {seeds!r}")
    strats = resolve_strategies(strategies)
    labels = pool.label_lists()
    unfitted = head_for(pool.output_type, labels, C=C)
    head_type = unfitted.output_type
    ids = np.arange(len(pool), dtype=np.int64)
    train_size = len(pool) - max(1, int(round(len(pool) * test_size)))
    if stop > train_size:
        raise ValueError(f"budgets stop at {stop} labels but the pool's training part holds only about {train_size} "
                         f"clips ({len(pool)} clips, test_size {test_size}); lower STOP or the test size")
    rounds = len(range(start, stop, step)) + 1
    total, done = len(seed_list) * (1 + len(strats) * rounds), 0
    curves: dict[str, dict[int, list[CurvePoint]]] = {name: {} for name in strats}
    full: dict[int, float] = {}
    held_out: list[tuple[int, int]] = []  # per seed: held-out clips, and the fewest of any class among them
    for seed in seed_list:
        train, test = stratified_split(split_key(labels), test_size, seed)[:2]
        x_test, t_test, s_test = pool.embeddings[test], pool.truth[test], pool.strata[test]
        present = np.asarray(t_test, dtype=bool).sum(axis=0)
        held_out.append((int(test.size), int(present[present > 0].min()) if (present > 0).any() else 0))
        full_head = clone(unfitted).set_params(random_state=seed).fit(
            pool.embeddings[train], [labels[i] for i in train], classes=pool.classes)
        full[seed] = _metrics(full_head, x_test, t_test, pool.classes, s_test)[0]
        done += 1
        if progress:
            progress(done, total, f"seed {seed}: head on all {train.size} training clips")
        initial = np.sort(np.random.default_rng(seed).choice(train, size=start, replace=False))
        view = MatrixView("simulated", ids[train], pool.embeddings[train])
        for name, proto in strats.items():
            labelled = initial.tolist()
            points: list[CurvePoint] = []
            while True:
                head = clone(unfitted).set_params(random_state=seed).fit(
                    pool.embeddings[labelled], [labels[i] for i in labelled], classes=pool.classes)
                points.append(CurvePoint(len(labelled), *_metrics(head, x_test, t_test, pool.classes, s_test)))
                done += 1
                if progress:
                    progress(done, total, f"seed {seed}, {name}: {len(labelled)} labels, macro recall "
                                          f"{points[-1].macro_recall:.3f}")
                if len(labelled) >= stop:
                    break
                strat = proto.__class__(**proto.get_params(deep=False))
                if "random_state" in strat.get_params(deep=False):
                    strat.set_params(random_state=seed * 10_007 + len(labelled))
                n = min(step, stop - len(labelled))
                t0 = time.perf_counter()
                if isinstance(strat, PeerStrategy):  # the library's own query: embeddings and the labels paid for
                    strat.set_params(C=C)
                    rows = strat.query_labelled(pool.embeddings[train],
                                                *labels_vector(pool.truth, train, labelled), n)
                    new = [int(train[r]) for r in rows]
                else:
                    probs = head.predict_proba(pool.embeddings[train])
                    sampled = _pool(ids[train], probs, pool.classes, pool, train, head_type,
                                    is_multi_label([labels[i] for i in labelled]))
                    new = [p.clip_id for p in strat.query(sampled, view, n, exclude=labelled, probabilities=MatrixView(
                        "simulated-probabilities", ids[train], probs))]
                points[-1].query_seconds = time.perf_counter() - t0
                if not new:
                    break
                if set(new) & set(labelled):  # a bug in a strategy or an adapter, never the user's fault
                    raise RuntimeError(f"{name} picked a clip that was already labelled")
                labelled.extend(new)
            curves[name][seed] = points
    params = {"strategies": {n: strategy_spec(s) for n, s in strats.items()}, "seeds": seed_list,
              "budgets": [start, stop, step], "test_size": test_size, "C": C, "source": pool.source,
              "n_clips": len(pool), "classes": list(pool.classes), "multi_label": pool.multi_label,
              "head_output_type": head_type, "n_test": min(n for n, _ in held_out),
              "min_test_per_class": min(k for _, k in held_out)}
    result = SimulationResult(params=_jsonable(params), curves=curves, full_data=full)
    result.summary = summarize(result)
    result.seconds = time.perf_counter() - started
    return result


def labels_to_reach(labels: np.ndarray, values: np.ndarray, target: float) -> Optional[int]:
    """The first label count at which ``values`` reach ``target`` (None if never)."""
    hit = np.flatnonzero(values >= target - 1e-12)
    return int(labels[hit[0]]) if hit.size else None


def summarize(result: SimulationResult) -> dict[str, dict[str, Any]]:
    """Per strategy (means over seeds): aulc, final, labels to reach random's final and 90 % of full data."""
    ref_labels, ref = result.mean_curve(REFERENCE)
    ref_final = float(ref[-1])
    full = float(np.mean(list(result.full_data.values())))
    out = {}
    for name in result.curves:
        labels, mean = result.mean_curve(name)
        span = float(labels[-1] - labels[0]) or 1.0
        aulc = float(np.trapezoid(mean, labels) / span) if labels.size > 1 else float(mean[0])
        n = min(labels.size, ref_labels.size)
        below = [int(labels[i]) for i in range(n) if mean[i] < ref[i] - 1e-9]
        reach = labels_to_reach(labels, mean, ref_final)
        seconds = [p.query_seconds for runs in result.curves[name].values() for p in runs[:-1]]
        worst = [p.worst_stratum_recall for runs in result.curves[name].values() for p in runs[-1:]
                 if p.worst_stratum_recall is not None]
        per_seed = {}
        for seed, points in result.curves[name].items():
            x = np.array([p.labels for p in points], dtype=np.float64)
            y = np.array([p.macro_recall for p in points])
            per_seed[str(seed)] = float(np.trapezoid(y, x) / (float(x[-1] - x[0]) or 1.0)) if x.size > 1 else float(y[0])
        out[name] = {
            "aulc": aulc, "aulc_per_seed": per_seed, "final": float(mean[-1]),
            "final_map": float(result.mean_curve(name, "map")[1][-1]),
            "final_worst_stratum_recall": float(np.mean(worst)) if worst else None,
            "labels_to_random_final": reach,
            "labels_to_random_final_ratio": None if reach is None else reach / float(ref_labels[-1]),
            "labels_to_90pct_full": labels_to_reach(labels, mean, 0.9 * full),
            "below_random_at": below,
            "seconds_per_query": float(np.mean(seconds)) if seconds else 0.0,
        }
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, QueryStrategy):
        return strategy_spec(value)
    return value


# ---------------------------------------------------------------------------- with a store
def load_pool(store: Optional[Store], pool_file: Optional[str | Path]) -> LabeledPool:
    """The pool file when given, else the store's own labelled clips."""
    if pool_file is not None:
        return load_pool_file(pool_file)
    if store is None:
        raise ValueError("give a pool file or a store to simulate on")
    return from_workspace(store)


def record(store: Ledger, result: SimulationResult) -> SimulationRun:
    """Keep a finished simulation in the store (the app's Lab page lists them)."""
    data = result.to_json()
    return store.add_simulation_run(SimulationRun(
        source=str(result.params.get("source", "")),
        params={**data["params"], "full_data_macro_recall": data["full_data_macro_recall"],
                "curves_detail": data["curves_detail"]},
        summary=data["summary"], curves=data["curves"], seconds=float(result.seconds)))


@dataclass(frozen=True)
class SimulationSettings:
    """What to replay: strategies compared with random, on a pool file or the workspace's labels, how often."""

    strategies: tuple[str, ...] = (DEFAULT_ALIAS,)
    pool_file: Optional[Path] = None
    seeds: int = 3
    budgets: tuple[int, int, int] = (20, 120, 20)
    test_size: float = 0.3


@dataclass
class WorkspaceSimulation:
    """A simulation stored in the workspace, and the files written of it."""

    run: SimulationRun
    result: SimulationResult
    files: list[Path] = field(default_factory=list)


def simulate_workspace(store: Store, settings: SimulationSettings = SimulationSettings(), *,
                       out: Optional[Path] = None, out_dir: Optional[Path] = None,
                       progress: Optional[Progress] = None) -> WorkspaceSimulation:
    """Simulate on ``settings.pool_file`` (else the workspace's labelled clips), store the run, write its files.

    What ``workbench simulate`` and the app's Lab page run. The JSON (CSV and PNG beside it) goes to
    ``out``, else to ``out_dir/simulation-<run id>.json``; with neither nothing is written. ``progress``
    is first called once with ``done`` 0: what is about to be replayed.
    """
    pool = load_pool(store, settings.pool_file)
    start, stop, step = check_budgets(tuple(settings.budgets))
    if progress:
        progress(0, 0, f"{len(pool)} labelled clips from {pool.source}, {len(pool.classes)} classes; strategies "
                       f"{', '.join(settings.strategies)} against random, {settings.seeds} seed(s), labels "
                       f"{start}:{stop}:{step}")
    result = simulate(pool, list(settings.strategies), seeds=settings.seeds, budgets=(start, stop, step),
                      test_size=settings.test_size, progress=progress)
    run = record(store, result)
    if out is None and out_dir is not None:
        out = Path(out_dir) / f"simulation-{run.id}.json"
    if out is None:
        return WorkspaceSimulation(run, result)
    from lab.report import write_all

    return WorkspaceSimulation(run, result, write_all(result, out))
