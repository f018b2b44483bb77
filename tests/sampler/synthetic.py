"""Generated pools with known structure, written through the real store.

Clip i belongs to true cluster ``i % n_clusters`` (a tight bundle around a random direction in
``dim``-d, far from the others) and to recording ``(i // n_clusters) % (sites x hours)``, so every
cluster spans every site and hour. Its top species is ``SPECIES[cluster % 4]`` with probability p:
p ~ U(0.45, 0.55) (max binary entropy >= 0.99) in ``hot_clusters``, else p ~ U(0.6, 0.99)
(entropy <= 0.971); the other classes sit at 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np

from store import Annotation, ModelVersion, Recording, Store
from store.ranges import SiteWeek, week_of

SPECIES = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin",
           "Fringilla coelebs_Common Chaffinch", "Parus major_Great Tit"]
RARE_SPECIES = "Jynx torquilla_Eurasian Wryneck"
SITES = ("A", "B", "C")
HOURS = (5, 6, 7, 8)


@dataclass
class Synthetic:
    model: ModelVersion
    clip_ids: np.ndarray  # generation order
    cluster: np.ndarray
    site: np.ndarray
    hour: np.ndarray
    species: np.ndarray
    embeddings: np.ndarray
    probabilities: np.ndarray

    def of(self, clip_ids, attr: str) -> list:
        """``attr`` (cluster, site, hour, species) of each clip id."""
        pos = {int(c): i for i, c in enumerate(self.clip_ids)}
        col = getattr(self, attr)
        return [col[pos[int(c)]] for c in clip_ids]


def build_pool(store: Store, *, n_clusters: int = 8, per_cluster: int = 40, dim: int = 32,
               sites=SITES, hours=HOURS, hot_clusters=(), noise: float = 0.05, structured: bool = True,
               no_embedding_sites=(), seed: int = 0, name: str = "birdnet-test",
               space: str = "test-space", rare: tuple[int, int] | None = None,
               out_of_range: dict[str, str] | None = None, partial_tails: bool = False) -> Synthetic:
    """``rare=(cluster, size)`` keeps only ``size`` clips of that cluster and makes their top
    species ``RARE_SPECIES`` (a fifth class): the long tail a sampler must not miss. ``partial_tails``
    makes each recording end 1 s into its last window, as real files do (a zero-padded tail window).

    ``out_of_range={site: species}`` gives those sites coordinates (site k at latitude 40 + k, longitude
    5) and stores range priors for their site-week: ``species`` at occurrence 0.001 (absent), every
    other class at 0.5. Other sites keep no coordinates (their clips' occurrence is unknown)."""
    rng = np.random.default_rng(seed)
    labels = SPECIES + [RARE_SPECIES] if rare else SPECIES
    model = store.ensure_model_version(name, "embedding", space, dim, labels)
    n = n_clusters * per_cluster
    cluster = np.arange(n) % n_clusters
    if rare:
        keep = (cluster != rare[0]) | (np.cumsum(cluster == rare[0]) <= rare[1])
        cluster = cluster[keep]
        n = cluster.size
    centers = rng.normal(size=(n_clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    if structured:
        emb = centers[cluster] + rng.normal(scale=noise, size=(n, dim))
    else:
        emb = rng.normal(size=(n, dim))
    emb = emb.astype(np.float32)
    p = np.where(np.isin(cluster, hot_clusters), rng.uniform(0.45, 0.55, n), rng.uniform(0.6, 0.99, n))
    species_idx = cluster % len(SPECIES)
    if rare:
        species_idx = np.where(cluster == rare[0], len(SPECIES), species_idx)
    probs = np.full((n, len(labels)), 0.01)
    probs[np.arange(n), species_idx] = p

    recs = [(s, h) for s in sites for h in hours]
    rec_of = (np.arange(n) // n_clusters) % len(recs)
    clip_ids = np.zeros(n, dtype=np.int64)
    for r, (site, hour) in enumerate(recs):
        rows = np.flatnonzero(rec_of == r)
        placed = out_of_range is not None and site in out_of_range
        rec = store.add_recording(Recording(path=f"/data/{site}/{hour:02d}.wav", content_hash=f"{name}-{site}-{hour}",
                                            site=site, device=f"dev-{site}", start_time=datetime(2024, 5, 1, hour),
                                            latitude=40.0 + sites.index(site) if placed else None,
                                            longitude=5.0 if placed else None, status="done",
                                            duration_s=3.0 * rows.size - 2.0 if partial_tails else None))
        spans = [(3.0 * j, 3.0 * j + 3.0) for j in range(rows.size)]
        if partial_tails and rows.size:  # the recording ends 1 s into its last window (zero-padded by ingest)
            spans[-1] = (spans[-1][0], spans[-1][0] + 1.0)
        clip_ids[rows] = store.add_clip_batch(rec.id, spans, model, probs[rows],
                                              None if site in no_embedding_sites else emb[rows])
    for site, absent in (out_of_range or {}).items():
        occurrence = np.full(len(labels), 0.5, dtype=np.float32)
        occurrence[labels.index(absent)] = 0.001
        store.add_range_priors(model, "synthetic", {SiteWeek(40.0 + sites.index(site), 5.0, week_of(date(2024, 5, 1))):
                                                    occurrence})
    return Synthetic(model=model, clip_ids=clip_ids, cluster=cluster,
                     site=np.array([recs[r][0] for r in rec_of], dtype=object),
                     hour=np.array([recs[r][1] for r in rec_of]),
                     species=np.array([labels[i] for i in species_idx], dtype=object),
                     embeddings=emb, probabilities=probs.astype(np.float32))


def annotate(store: Store, clip_ids, labels, *, state: str = "active", start: int = 1) -> None:
    """Store one Label Studio annotation per clip (project 1), as the annotation sync would."""
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    for k, (cid, labs) in enumerate(zip(clip_ids, labels), start=start):
        store.upsert_annotation(Annotation(clip_id=int(cid), project_id=1, ls_task_id=1000 + k,
                                           ls_annotation_id=5000 + k, labels=list(labs), state=state,
                                           created_at=now, updated_at=now))
