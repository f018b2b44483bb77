"""Sampling at scale: the full ``sample()`` path on pools of 100k, 1M and 10M clips, against naive baselines.

    .venv/bin/python bench/sampling.py [--sizes 100k,1M,10M] [--quick] [--budget 1000] [--baseline-size 20k]

Pools are generated with known structure (clusters in 1,024-d, 12 sites x 24 hours of one-hour
recordings of 3 s windows, a long-tailed predicted-species distribution over 32 labels) and written
THROUGH THE STORE (``add_recordings`` + ``add_clips`` in batches of 100k), once: the built store is
cached under the repo's ignored ``.cache/bench-sampling/`` and reused by later runs. Building
happens in a child process, so the timing process holds no generator memory.

Timed: ``sampler.run.sample(store, strategy, budget)`` on a freshly opened store, i.e. pool
building, exclusions, embedding reads (memory-mapped), the strategy and recording the run. The
strategy is the workbench's default (``--strategy NAME`` times another; the output says which). Peak memory is the process's peak resident
set (VmHWM, reset before each run; it includes the interpreter and mapped file pages touched).
Each run records a sampling run in the cached store, as successive rounds would.

Baselines, same process, on a smaller pool: exact k-means on ALL points with k = budget then the
most uncertain clip per cluster; and TABMON-style export (uncertainty threshold, random order, then
greedy species balancing that rescans all rows per pick). Each is printed with its ratio to ours on
the same pool. Embeddings are float32 below 1M clips and float16 from 1M (``--dtype`` to force).
The last line is ``sampling 1M x 1024 budget 1000: X s, peak Y GB``.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from store import Recording, Store  # noqa: E402

CACHE = REPO / ".cache" / "bench-sampling"
GENERATOR_VERSION = 1  # bump when the generated pool changes: cached stores of other versions are rebuilt
DIM = 1024
PER_RECORDING = 1200  # one hour of 3 s windows
BATCH = 100_000
SITES = 12
N_LABELS = 32
N_CLUSTERS = 256
MODEL = "birdnet-bench"
SPACE = "birdnet-bench-space"
GENERA = ["Turdus", "Erithacus", "Fringilla", "Parus", "Sylvia", "Phylloscopus", "Strix", "Sitta"]


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if mult > 1 else text) * mult)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"pool size {text!r}: expected e.g. 100k, 1M or 2500000") from e


def fmt_size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def say(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------ generated pool
def labels() -> list[str]:
    return [f"{GENERA[i % len(GENERA)]} sp{i:02d}_Bench bird {i:02d}" for i in range(N_LABELS)]


class Generator:
    """Deterministic pool: clip i's cluster, species and vectors depend only on (seed, i // BATCH)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.centres = rng.standard_normal((N_CLUSTERS, DIM)).astype(np.float32)
        # long tails: a few clusters (sounds) dominate, and so do a few species
        self.cluster_p = 1.0 / np.arange(1, N_CLUSTERS + 1) ** 1.05
        self.cluster_p /= self.cluster_p.sum()
        species_p = 1.0 / np.arange(1, N_LABELS + 1) ** 1.3
        self.species_of_cluster = rng.choice(N_LABELS, size=N_CLUSTERS, p=species_p / species_p.sum())

    def batch(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (n x 32) and embeddings (n x 1,024) of clips start .. start + n - 1."""
        rng = np.random.default_rng([self.seed, start])
        cluster = rng.choice(N_CLUSTERS, size=n, p=self.cluster_p)
        emb = rng.standard_normal((n, DIM), dtype=np.float32)
        emb *= 0.6
        emb += self.centres[cluster]
        species = np.where(rng.random(n) < 0.85, self.species_of_cluster[cluster], rng.integers(0, N_LABELS, n))
        probs = rng.beta(0.4, 12.0, size=(n, N_LABELS)).astype(np.float32)
        probs[np.arange(n), species] = rng.beta(2.0, 1.2, size=n)  # sometimes sure, often not
        return probs, emb


def recording_of(r: int) -> Recording:
    """Recording r: site r % 12, hour (r // 12) % 24, one day per 288 recordings."""
    site, hour, day = r % SITES, (r // SITES) % 24, r // (SITES * 24)
    return Recording(path=f"/bench/site-{site:02d}/{day:04d}_{hour:02d}0000.wav", content_hash=f"bench-{r}",
                     site=f"site-{site:02d}", device=f"dev-{site:02d}-{r % 2}",
                     start_time=datetime(2024, 4, 1) + timedelta(days=day, hours=hour), duration_s=3600.0,
                     sample_rate=48000, status="done")


def cache_dir(n: int, dtype: str) -> Path:
    return CACHE / f"pool-{fmt_size(n)}-{DIM}d-{dtype}-v{GENERATOR_VERSION}"


def cached(n: int, dtype: str) -> bool:
    marker = cache_dir(n, dtype) / "built.json"
    return marker.exists() and json.loads(marker.read_text()).get("clips") == n


def build(n: int, dtype: str) -> None:
    """Write a pool of n clips through the store (child process), then mark the cache complete."""
    folder = cache_dir(n, dtype)
    if folder.exists():
        shutil.rmtree(folder)  # a half-built cache from an interrupted run
    t0 = time.perf_counter()
    store = Store.open(folder, embedding_dtype=dtype)
    gen = Generator()
    mv = store.ensure_model_version(MODEL, "embedding", SPACE, DIM, labels())
    n_rec = -(-n // PER_RECORDING)
    rec_ids = np.zeros(n_rec, dtype=np.int64)
    for lo in range(0, n_rec, 5000):
        recs = store.add_recordings([recording_of(r) for r in range(lo, min(n_rec, lo + 5000))])
        rec_ids[lo:lo + len(recs)] = [r.id for r in recs]
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        i = np.arange(start, start + m)
        probs, emb = gen.batch(start, m)
        spans = np.column_stack([(i % PER_RECORDING) * 3.0, (i % PER_RECORDING) * 3.0 + 3.0])
        store.add_clips(rec_ids[i // PER_RECORDING], spans, mv, probs, emb)
        done = start + m
        rate = done / (time.perf_counter() - t0)
        say(f"  building {fmt_size(n)} ({dtype}): {done:,} / {n:,} clips, {rate:,.0f} clips/s, "
            f"~{(n - done) / rate:.0f} s left")
    store.close()
    (folder / "built.json").write_text(json.dumps({"clips": n, "dim": DIM, "dtype": dtype,
                                                   "generator": GENERATOR_VERSION,
                                                   "build_s": round(time.perf_counter() - t0, 1)}))
    say(f"  built {fmt_size(n)} in {time.perf_counter() - t0:.0f} s -> {folder.relative_to(REPO)}")


def ensure_built(n: int, dtype: str) -> Path:
    if not cached(n, dtype):
        say(f"building a {fmt_size(n)}-clip pool ({dtype} embeddings) through the store; cached for later runs")
        child = mp.get_context("spawn").Process(target=build, args=(n, dtype))
        child.start()
        child.join()
        if child.exitcode != 0 or not cached(n, dtype):
            raise SystemExit(f"building the {fmt_size(n)} pool failed (exit code {child.exitcode})")
    return cache_dir(n, dtype)


def open_store(n: int, dtype: str) -> Store:
    return Store.open(cache_dir(n, dtype))


# ------------------------------------------------------------------------------------ measuring
def _vm(key: str) -> float:
    """VmHWM / VmRSS of this process in GB (Linux), NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: write 5 to clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_gb(was_reset: bool) -> float:
    if was_reset:
        return _vm("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # lifetime peak, an upper bound


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, peak GB) of fn(), after dropping what earlier runs left unreferenced."""
    gc.collect()
    was_reset = reset_peak()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, peak_gb(was_reset)


# ------------------------------------------------------------------------------------ ours
def make_strategy(name: str = "default") -> tuple[Any, str]:
    """The workbench's default strategy (what `workbench sample` runs), or a named one with its defaults."""
    from sampler import STRATEGIES
    from sampler.defaults import DEFAULT_STRATEGY, default_strategy

    if name in ("default", DEFAULT_STRATEGY):
        strategy = default_strategy(random_state=0)
        return strategy, f"the default ({DEFAULT_STRATEGY}) with {strategy.get_params(deep=False)}"
    cls = STRATEGIES[name]
    params = {"random_state": 0} if "random_state" in cls().get_params() else {}
    if "strata" in cls().get_params():
        params["strata"] = ("site", "hour", "species")
    return cls(**params), f"{name} with {params}"


# Store methods the breakdown times (wrapped on the one store object of a run, then removed)
WRAPPED = ("pool", "embeddings", "probabilities", "excluded_clip_ids", "excluded_clip_ids_array",
           "add_sampling_run", "current_model_version")


def run_ours(store: Store, strategy: Any, budget: int) -> tuple[float, float, dict[str, float], int]:
    """Time sample() on ``store``; also where the time went (wrappers on this store object only)."""
    from sampler.run import sample

    parts: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                parts[name] += time.perf_counter() - t
        return wrapper

    for name in WRAPPED:
        setattr(store, name, timed(name, getattr(store, name)))
    query = type(strategy).query

    def timed_query(self, *a, **kw):
        t = time.perf_counter()
        try:
            return query(self, *a, **kw)
        finally:
            parts["strategy.query"] += time.perf_counter() - t

    type(strategy).query = timed_query
    try:
        (run, picks), wall, peak = measured(lambda: sample(store, strategy, budget))
    finally:
        type(strategy).query = query
        for name in WRAPPED:
            delattr(store, name)  # no store <-> wrapper cycle keeping memory maps alive
    parts["other"] = wall - sum(parts.values())
    return wall, peak, dict(parts), len(picks)


def ours_on(n: int, dtype: str, strategy: Any, budget: int, repeats: int) -> tuple[float, float]:
    """Best wall time and highest peak of ``repeats`` runs on the cached n-clip pool; prints each."""
    best, top = float("inf"), 0.0
    for k in range(repeats):
        store = open_store(n, dtype)
        gc.collect()
        say(f"  ours {fmt_size(n)} run {k + 1}/{repeats} ({load()}, process RSS before {_vm('VmRSS'):.2f} GB)")
        wall, peak, parts, n_picks = run_ours(store, strategy, budget)
        store.close()
        detail = ", ".join(f"{name} {sec:.2f}" for name, sec in sorted(parts.items(), key=lambda x: -x[1]))
        say(f"    {wall:.2f} s, peak {peak:.2f} GB, {n_picks} picks  [{detail}]")
        best, top = min(best, wall), max(top, peak)
    return best, top


def approximate_vs_exact(n: int, dtype: str, budget: int) -> None:
    """The default clusters its candidates on 64 principal components once the k-means would be large; how far
    is that batch from the one clustered on every dimension? Same pool, exclusions and seed; nothing stored."""
    from sampler.run import query_store
    from sampler.uncertain_diverse import UncertainDiverse

    store = open_store(n, dtype)
    mv = store.current_model_version()
    out = {}
    for label, pca in (("approximate (auto: 64 components)", None), ("exact (every dimension)", DIM)):
        strat = UncertainDiverse(pca=pca, random_state=0)
        t0 = time.perf_counter()
        picks, pool, _ = query_store(store, strat, budget, mv)
        out[label] = (time.perf_counter() - t0, picks)
    (a_s, a), (e_s, e) = out.values()
    ids_a, ids_e = {p.clip_id for p in a}, {p.clip_id for p in e}
    emb = store.embeddings(SPACE)

    def spread(picks) -> float:  # mean cosine distance to the nearest other pick: higher = more spread out
        x = emb.take([p.clip_id for p in picks])
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sim = x @ x.T
        np.fill_diagonal(sim, -1)
        return float(np.mean(1 - sim.max(axis=1)))

    def stratum_cover(picks) -> int:
        return len({p.stratum for p in picks})

    say(f"  approximate vs exact clustering on {fmt_size(n)} (budget {budget}): approximate {a_s:.1f} s, exact "
        f"{e_s:.1f} s ({e_s / max(a_s, 1e-9):.1f}x); {len(ids_a & ids_e) / budget:.0%} of the clips in common; "
        f"nearest-pick spread {spread(a):.3f} vs {spread(e):.3f}; strata covered {stratum_cover(a)} vs "
        f"{stratum_cover(e)}; mean uncertainty {np.mean([p.score for p in a]):.3f} vs "
        f"{np.mean([p.score for p in e]):.3f}")
    store.close()


# ------------------------------------------------------------------------------------ baselines
def exact_kmeans_baseline(store: Store, budget: int, seed: int = 0) -> int:
    """k-means on ALL pool embeddings with k = budget (no subsampling), then the most uncertain clip per cluster."""
    import faiss

    pool = store.pool()
    x = store.embeddings(SPACE).take(pool.clip_id)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = faiss.Kmeans(DIM, budget, niter=20, nredo=1, seed=seed, max_points_per_centroid=len(pool),
                      min_points_per_centroid=1)
    km.train(x)
    _, assign = km.index.search(x, 1)
    assign = assign.ravel()
    order = np.lexsort((-pool.max_entropy, assign))  # by cluster, most uncertain first
    first = order[np.r_[True, assign[order][1:] != assign[order][:-1]]]
    return len(first)


def tabmon_baseline(store: Store, budget: int, threshold: float = 0.5, seed: int = 0) -> int:
    """TABMON's export: uncertainty >= threshold, random order, greedy species balancing rescanning all rows.

    TABMON draws with an unseeded ORDER BY RANDOM(); seeded here so the figure is repeatable. Each
    pick rescans every candidate row for the one whose species has the fewest picks so far (O(n x budget)).
    """
    pool = store.pool()
    rows = np.flatnonzero(pool.max_entropy >= threshold)
    rows = rows[np.random.default_rng(seed).permutation(rows.size)]
    candidates = [(int(pool.clip_id[i]), str(pool.top_label[i])) for i in rows]
    counts: dict[str, int] = defaultdict(int)
    taken: set[int] = set()
    picks: list[int] = []
    while len(picks) < min(budget, len(candidates)):
        best = None
        for clip_id, species in candidates:  # rescan every row for every pick
            if clip_id in taken:
                continue
            if best is None or counts[species] < counts[best[1]]:
                best = (clip_id, species)
        taken.add(best[0])
        counts[best[1]] += 1
        picks.append(best[0])
    return len(picks)


# ------------------------------------------------------------------------------------ main
def disk_free_gb(path: Path) -> float:
    path.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1024**3


def need_gb(n: int, dtype: str) -> float:
    """Disk a cached pool takes: embeddings, probabilities, score and clip columns, SQL rows (~700 B/clip)."""
    return n * (DIM * (2 if dtype == "float16" else 4) + N_LABELS * 2 + 5 * 8 + 2 * 8 + 16 + 700) / 1024**3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,1M,10M", help="pool sizes to time ours on (default 100k,1M,10M)")
    ap.add_argument("--quick", action="store_true",
                    help="sizes 100k,1M, one run each, baselines on a 20k pool")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--strategy", default="default", help="strategy to time (default: the workbench's default)")
    ap.add_argument("--baseline-size", type=parse_size, default=None,
                    help="pool for the naive baselines and ours beside them (default 100k, 20k with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per size below 10M (default 2, 1 with --quick)")
    ap.add_argument("--dtype", choices=["auto", "float32", "float16"], default="auto",
                    help="embedding dtype: auto = float32 below 1M clips, float16 from 1M")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in ("100k,1M" if args.quick and args.sizes == ap.get_default("sizes")
                                     else args.sizes).split(",")]
    base_n = args.baseline_size or (20_000 if args.quick else 100_000)
    repeats = args.repeats or (1 if args.quick else 2)
    budget = args.budget

    def dtype_for(n: int) -> str:
        return args.dtype if args.dtype != "auto" else ("float16" if n >= 1_000_000 else "float32")

    strategy, described = make_strategy(args.strategy)
    say(f"sampling benchmark: budget {budget}, {DIM}-d, {os.cpu_count()} cores, {load()}")
    say(f"strategy: {described}")
    mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3

    results: dict[int, tuple[float, float, str]] = {}
    for n in sizes:
        dtype = dtype_for(n)
        if not cached(n, dtype):
            free, need = disk_free_gb(CACHE), need_gb(n, dtype)
            if free < need * 1.2 + 5:
                say(f"skipping {fmt_size(n)}: building it needs ~{need:.0f} GB on disk, {free:.0f} GB free under {CACHE}")
                continue
            if n * 11 * 8 / 1024**3 > 0.5 * mem_total:
                say(f"skipping {fmt_size(n)}: its pool columns (~{n * 88 / 1024**3:.1f} GB) would not fit "
                    f"in half of this machine's {mem_total:.0f} GB RAM")
                continue
        ensure_built(n, dtype)
        say(f"pool {fmt_size(n)} x {DIM} ({dtype} embeddings, memory-mapped):")
        wall, peak = ours_on(n, dtype, strategy, budget, repeats if n < 10_000_000 else 1)
        if args.strategy == "default":
            approximate_vs_exact(n, dtype, budget)
        results[n] = (wall, peak, dtype)

    say("")
    say(f"baselines on a {fmt_size(base_n)}-clip pool (float32), same process:")
    ensure_built(base_n, "float32")
    if base_n in results and results[base_n][2] == "float32":
        ours_base = results[base_n][0]
        say(f"  ours {fmt_size(base_n)}: {ours_base:.2f} s (timed above)")
    else:
        ours_base, _ = ours_on(base_n, "float32", strategy, budget, repeats)
    extrapolated = []
    for label, fn, growth in (
            ("exact k-means on all points (k = budget) + most uncertain per cluster", exact_kmeans_baseline,
             "linear in the pool"),
            ("TABMON greedy species balancing (rescans all rows per pick)", tabmon_baseline,
             "pool x budget")):
        store = open_store(base_n, "float32")
        say(f"  {label} ({load()})")
        n_picks, wall, peak = measured(lambda: fn(store, budget))
        store.close()
        say(f"    {wall:.2f} s, peak {peak:.2f} GB, {n_picks} picks: {wall / ours_base:.1f}x our time "
            f"({ours_base:.2f} s) on the same pool")
        extrapolated.append((label.split(" (")[0], wall, growth))
    if 1_000_000 in results and base_n < 1_000_000:
        ours_1m = results[1_000_000][0]
        for name, wall, growth in extrapolated:
            est = wall * 1_000_000 / base_n
            say(f"  extrapolated to 1M ({growth}, not run): {name} ~{est:.0f} s = ~{est / ours_1m:.0f}x "
                f"our measured 1M time")

    say("")
    say(f"cost growing with the pool (ours, budget {budget}):")
    for n, (wall, peak, dtype) in results.items():
        say(f"  {fmt_size(n):>5} clips ({dtype}): {wall:6.2f} s, peak {peak:.2f} GB")
    key = 1_000_000 if 1_000_000 in results else (max(results) if results else None)
    if key is None:
        say("no pool size was timed")
        return 1
    if 10_000_000 in results:
        wall, peak, _ = results[10_000_000]
        say(f"sampling 10M x {DIM} budget {budget}: {wall:.1f} s, peak {peak:.2f} GB (target: 10 s, 4 GB on 2 cores)")
    wall, peak, _ = results[key]
    say(f"sampling {fmt_size(key)} x {DIM} budget {budget}: {wall:.1f} s, peak {peak:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
