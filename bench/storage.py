"""Bytes per window: what a store of a million BirdNET windows costs, by file and by table.

Builds a store of N windows (default 1,000,000) with BirdNET's 6,522 classes the way ingest writes it
(``Store.add_clips`` in batches: a recording per 20 minutes of audio, scores and top-5 predictions, the
output layer kept so probability rows are not stored, float16 embeddings as workspaces default to), then
prints every vector file and SQL table (SQLite's dbstat) per window. The embeddings are random unit-scale
vectors and the probabilities come from the real BirdNET output layer applied to them, so scores and
top-5 predictions are computed as in a real ingest. Before it, the cost of the 0.1.0 layout is printed
for comparison (float32 embeddings, a float16 row of 6,522 probabilities, five SQL prediction rows and a
score row per window, measured on a smaller store and scaled).

Then, on the real soundscape windows of bench/label_sets.py (BirdNET embeddings), what float16 changes:
the default strategy's batch (overlap with the float32 batch) and the head's macro recall.

    .venv/bin/python bench/storage.py [--windows 1000000] [--keep DIR]

Last line: ``storage per window at 1M: X KB``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from embeddings.birdnet import BirdNET  # noqa: E402
from store import Recording, Store  # noqa: E402

WINDOWS_PER_RECORDING = 400  # 20 minutes of 3 s windows
BATCH = 20_000


def build(folder: Path, n: int, dtype: str, keep_layer: bool, progress: bool = True) -> tuple[Store, float]:
    model = BirdNET()
    weights, bias, _ = model.output_layer()
    store = Store.open(folder, embedding_dtype=dtype)
    mv = store.ensure_model_version(model.name, "embedding", model.name, model.dim, model.labels)
    if keep_layer:
        store.set_output_layer(mv, weights, bias, "sigmoid")
    rng = np.random.default_rng(0)
    n_rec = -(-n // WINDOWS_PER_RECORDING)
    recs = store.add_recordings([Recording(path=f"/data/site{i % 100:03d}/rec{i:07d}.wav", content_hash=f"h{i}",
                                           site=f"site{i % 100:03d}", device=f"AM{i % 100:03d}", status="done",
                                           sample_rate=48000, channels=1, duration_s=1200.0, frames=57_600_000)
                                 for i in range(n_rec)])
    rec_ids = np.repeat([r.id for r in recs], WINDOWS_PER_RECORDING)[:n]
    starts = np.tile(np.arange(WINDOWS_PER_RECORDING) * 3.0, n_rec)[:n]
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        emb = rng.normal(0, 0.35, (min(BATCH, n - i), model.dim)).astype(np.float32)
        probs = 1.0 / (1.0 + np.exp(-(emb @ weights.T + bias)))
        store.add_clips(rec_ids[i:i + len(emb)], np.column_stack([starts[i:i + len(emb)],
                                                                  starts[i:i + len(emb)] + 3.0]),
                        mv, probs, emb)
        if progress:
            done = i + len(emb)
            print(f"\r  {done:,}/{n:,} windows, {done / (time.perf_counter() - t0):,.0f} windows/s", end="",
                  file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return store, time.perf_counter() - t0


def sizes(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes per vector file and per SQL table/index (the WAL checkpointed first)."""
    files = {p.name: p.stat().st_size for p in sorted((folder / "vectors").iterdir())}
    db = sqlite3.connect(folder / "workbench.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    db.close()
    return files, tables


def report(title: str, folder: Path, n: int) -> float:
    files, tables = sizes(folder)
    total = sum(files.values()) + sum(tables.values())
    print(f"\n{title}: {total / n:,.0f} bytes per window ({total / 2**30:.2f} GiB for {n:,} windows)")
    for name, size in sorted(files.items(), key=lambda kv: -kv[1]):
        if size / n >= 0.5:
            print(f"  file  {name:<48} {size / n:10,.1f} B/window")
    print(f"  files under 0.5 B/window: {sum(s for s in files.values() if s / n < 0.5) / n:.2f} B/window")
    for name, size in sorted(tables.items(), key=lambda kv: -kv[1]):
        if size / n >= 0.5:
            print(f"  table {name:<48} {size / n:10,.1f} B/window")
    print(f"  tables under 0.5 B/window: {sum(s for s in tables.values() if s / n < 0.5) / n:.2f} B/window")
    return total / n


def legacy_layout(folder: Path, n: int) -> float:
    """What release 0.1.0 kept per window, measured on ``n`` windows: SQL score and prediction rows, a float16
    probability row, float32 embeddings."""
    from store import Prediction, Score
    from store.uncertainty import score_rows, top_k

    store, _ = build(folder, n, "float32", keep_layer=False, progress=False)
    mv = store.model_version("birdnet-v2.4")
    pool = store.pool(mv)
    probs = store.probabilities(mv).take(pool.clip_id)
    sc, (idx, vals) = score_rows(probs), top_k(probs, 5)
    with store._session(write=True) as s:  # the rows 0.1.0 wrote beside the matrices
        for j, clip in enumerate(pool.clip_id.tolist()):
            s.add(Score(clip_id=clip, model_version_id=mv.id, max_entropy=float(sc["max_entropy"][j]),
                        mean_entropy=float(sc["mean_entropy"][j]), top1=float(sc["top1"][j]),
                        margin=float(sc["margin"][j]), top_label=mv.labels[int(sc["top_index"][j])]))
            for r in range(5):
                s.add(Prediction(clip_id=clip, model_version_id=mv.id, rank=r + 1, label=mv.labels[int(idx[j, r])],
                                 probability=float(vals[j, r])))
        s.commit()
    store.close()
    return report(f"release 0.1.0 layout, measured on {n:,} windows", folder, n)


def float16_effect() -> None:
    """The default batch and the head's macro recall on real BirdNET windows, float32 against float16."""
    import label_sets
    from finetune.evaluate import evaluate, split_key, stratified_split
    from finetune.head import head_for
    from lab.simulate import _pool
    from sampler.defaults import default_strategy
    from store.matrices import MatrixView

    pool = label_sets.soundscape()
    labels = pool.label_lists()
    train, test, _ = stratified_split(split_key(labels), 0.3, 0)
    labelled = np.sort(np.random.default_rng(0).choice(train, 300, replace=False))  # a few rounds' worth
    recalls = {}
    for dtype in ("float32", "float16"):
        x = pool.embeddings.astype(dtype).astype(np.float32)
        fit_on = [labels[i] for i in labelled]
        head = head_for(pool.output_type, fit_on, random_state=0).fit(x[labelled], fit_on, classes=pool.classes)
        recalls[dtype] = evaluate(pool.truth[test], head.predict(x[test]), pool.classes,
                                  pool.strata[test])["macro_recall"]
        ids = np.arange(len(pool))
        probs = head.predict_proba(x)
        picks = default_strategy(random_state=0).query(_pool(ids, probs, pool.classes, pool, ids, "sigmoid"),
                                                       MatrixView("e", ids, x), 100, exclude=labelled)
        recalls[dtype + "_batch"] = {p.clip_id for p in picks}
    overlap = len(recalls["float32_batch"] & recalls["float16_batch"]) / 100
    print(f"\nfloat16 embeddings on the soundscape set ({len(pool):,} real BirdNET windows): head macro recall "
          f"{recalls['float32']:.4f} (float32) vs {recalls['float16']:.4f} (float16); the default strategy's "
          f"batch of 100 shares {overlap:.0%} of its clips")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=1_000_000)
    p.add_argument("--keep", type=Path, help="keep the built store in this folder")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    try:
        legacy = legacy_layout(tmp / "legacy", 20_000)
        folder = args.keep or tmp / "compact"
        print(f"\nbuilding a store of {args.windows:,} windows with BirdNET's 6,522 classes in {folder}", flush=True)
        store, seconds = build(folder, args.windows, "float16", keep_layer=True)
        store.close()
        print(f"  written in {seconds:.0f} s ({args.windows / seconds:,.0f} windows/s)")
        per_window = report(f"this release at {args.windows:,} windows", folder, args.windows)
        print(f"\n0.1.0 layout {legacy / 1024:.1f} KB/window; this one {per_window / 1024:.2f} KB/window "
              f"({legacy / per_window:.1f}x smaller); the floor (a float16 1,024-d embedding) is 2.0 KB")
        try:
            float16_effect()
        except FileNotFoundError as e:
            print(f"\nfloat16 effect not measured: {e}")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"storage per window at {args.windows / 1e6:g}M: {per_window / 1024:.2f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
