"""A labelled pool to replay active learning on: embeddings, known labels, strata, times.

It comes from a pool file (how BioDCASE hands out its pools: precomputed embeddings with labels), as
``.npz`` arrays or a Parquet table with the same columns, or from a workspace's own labelled clips.
Every array is checked at the boundary with an error naming the file, the field and what was expected.

Fields (n clips, d dimensions, C classes):

* ``embeddings``: n x d floats (Parquet: one list column);
* ``labels``: n strings (one class per clip), or n integers indexing ``classes``; or ``labels_multi``: n x C
  booleans with ``classes`` (C strings), for multi-label pools;
* ``strata`` (optional): n strings (site, site/hour, ...), the groups judged by worst-stratum recall;
* ``probabilities`` (optional): n x C' floats in [0, 1], the pretrained model's outputs, with
  ``classes`` (or ``probability_classes``) naming the C' columns;
* ``times`` (optional): n ISO date-times (clip starts), for hour strata.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np



class PoolFileError(ValueError):
    """A pool file or array that cannot be simulated on; the message names the file and field."""


@dataclass
class LabeledPool:
    """Clips with embeddings and known labels, as parallel arrays (one row per clip)."""

    embeddings: np.ndarray  # n x d float32
    truth: np.ndarray  # n x C bool
    classes: list[str]
    multi_label: bool
    strata: np.ndarray  # n strings ("" = unknown)
    times: np.ndarray  # n datetime64[s] (NaT = unknown)
    probabilities: Optional[np.ndarray] = None  # n x C' float32, the pretrained model's outputs
    probability_classes: Optional[list[str]] = None
    source: str = "arrays"
    output_type: str = "sigmoid"  # of ``probabilities``: sigmoid (independent per class) or softmax

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def label_lists(self, rows: Optional[np.ndarray] = None) -> list[list[str]]:
        """The labels of each clip (or of ``rows``), as lists: what the head is trained on."""
        truth = self.truth if rows is None else self.truth[rows]
        classes = np.array(self.classes, dtype=object)
        return [classes[r].tolist() for r in truth]


def _where(source: str, field: str) -> str:
    return f"{source}: field {field!r}"


def from_arrays(embeddings, *, labels=None, labels_multi=None, classes: Optional[Sequence[str]] = None,
                strata=None, probabilities=None, probability_classes: Optional[Sequence[str]] = None,
                times=None, source: str = "arrays", output_type: str = "sigmoid") -> LabeledPool:
    """Check every array and build a ``LabeledPool``; a problem raises ``PoolFileError`` naming the field."""
    where = lambda field: _where(source, field)  # noqa: E731
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise PoolFileError(f"{where('embeddings')} must be an n x d array of floats with n >= 2, got shape "
                            f"{x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise PoolFileError(f"{where('embeddings')} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise PoolFileError(f"{where('embeddings')} has NaN or infinite values in {int(bad.sum())} rows (first: row "
                            f"{int(np.flatnonzero(bad)[0])}); drop or re-compute those clips")
    n = x.shape[0]
    if (labels is None) == (labels_multi is None):
        raise PoolFileError(f"{source}: give exactly one of 'labels' (n strings) or 'labels_multi' (n x C booleans "
                            f"with 'classes')")
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != n:
            raise PoolFileError(f"{where('labels')} must hold one label per clip ({n}), got shape {lab.shape}")
        if np.issubdtype(lab.dtype, np.integer) and classes is not None:  # class indices into 'classes'
            if lab.size and (lab.min() < 0 or lab.max() >= len(classes)):
                bad = int(lab[(lab < 0) | (lab >= len(classes))][0])
                raise PoolFileError(f"{where('labels')} holds class index {bad}, but 'classes' names "
                                    f"{len(classes)} classes (0..{len(classes) - 1})")
            lab = np.array([str(c) for c in classes], dtype=object)[lab]
        lab = lab.astype(str)
        if (np.char.strip(lab) == "").any():
            raise PoolFileError(f"{where('labels')} has empty labels (first: row {int(np.flatnonzero(np.char.strip(lab) == '')[0])})")
        cls = sorted(set(lab.tolist()))
        truth = lab[:, None] == np.array(cls)[None, :]
        multi = False
    else:
        truth = np.asarray(labels_multi)
        if truth.ndim != 2 or truth.shape[0] != n:
            raise PoolFileError(f"{where('labels_multi')} must be an n x C array ({n} rows), got shape {truth.shape}")
        if truth.dtype != bool:
            if not np.isin(truth, (0, 1)).all():
                raise PoolFileError(f"{where('labels_multi')} must hold booleans (or 0/1), got values such as "
                                    f"{truth.ravel()[~np.isin(truth.ravel(), (0, 1))][0]!r}")
            truth = truth.astype(bool)
        if classes is None or len(classes) != truth.shape[1]:
            raise PoolFileError(f"{where('classes')} must name the {truth.shape[1]} columns of 'labels_multi', got "
                                f"{None if classes is None else len(classes)}")
        cls = [str(c) for c in classes]
        if len(set(cls)) != len(cls):
            raise PoolFileError(f"{where('classes')} names a class twice")
        multi = True
    present = truth.any(axis=0)
    if present.sum() < 2:
        raise PoolFileError(f"{source}: the labels hold {int(present.sum())} class(es); a head needs at least two "
                            f"to learn anything (and a strategy, something to choose between)")
    if strata is None:
        st = np.full(n, "", dtype=object)
    else:
        st = np.asarray(strata)
        if st.ndim != 1 or st.shape[0] != n:
            raise PoolFileError(f"{where('strata')} must hold one stratum per clip ({n}), got shape {st.shape}")
        st = st.astype(str).astype(object)
    if times is None:
        tm = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    else:
        raw = np.asarray(times)
        if raw.ndim != 1 or raw.shape[0] != n:
            raise PoolFileError(f"{where('times')} must hold one time per clip ({n}), got shape {raw.shape}")
        try:
            tm = raw.astype("datetime64[s]") if np.issubdtype(raw.dtype, np.datetime64) else \
                np.array([np.datetime64(str(t)) if str(t) not in ("", "NaT", "None", "nan") else np.datetime64("NaT")
                          for t in raw], dtype="datetime64[s]")
        except ValueError as e:
            raise PoolFileError(f"{where('times')} must hold ISO date-times (e.g. 2024-05-01T05:30:00): {e}") from e
    probs, pcls = None, None
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != n:
            raise PoolFileError(f"{where('probabilities')} must be an n x C array ({n} rows), got shape {probs.shape}")
        if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
            raise PoolFileError(f"{where('probabilities')} must hold finite probabilities in [0, 1]")
        pcls = [str(c) for c in (probability_classes if probability_classes is not None else
                                 (classes if classes is not None and len(classes) == probs.shape[1] else
                                  [f"class {j}" for j in range(probs.shape[1])]))]
        if len(pcls) != probs.shape[1]:
            raise PoolFileError(f"{where('probability_classes')} must name the {probs.shape[1]} columns of "
                                f"'probabilities', got {len(pcls)}")
        probs = probs.astype(np.float32)
    if output_type not in ("sigmoid", "softmax"):
        raise PoolFileError(f"{source}: output_type must be 'sigmoid' or 'softmax', got {output_type!r}")
    return LabeledPool(embeddings=x, truth=truth, classes=cls, multi_label=multi, strata=st, times=tm,
                       probabilities=probs, probability_classes=pcls, source=source, output_type=output_type)


def load_pool_file(path: str | Path) -> LabeledPool:
    """A pool from an ``.npz`` file or a Parquet table (same fields; see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise PoolFileError(f"{path} does not exist: give an .npz or .parquet pool file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = _read_npz(path)
    elif suffix in (".parquet", ".pq"):
        data = _read_parquet(path)
    else:
        raise PoolFileError(f"{path}: a pool file is .npz or .parquet, not {suffix or 'a file without ending'}")
    known = {"embeddings", "labels", "labels_multi", "classes", "strata", "probabilities", "probability_classes",
             "times", "output_type"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PoolFileError(f"{path}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    if "embeddings" not in data:
        raise PoolFileError(f"{path}: field 'embeddings' is missing (n x d floats)")
    classes = data.get("classes")
    out_type = data.get("output_type")
    return from_arrays(data["embeddings"], labels=data.get("labels"), labels_multi=data.get("labels_multi"),
                       classes=None if classes is None else [str(c) for c in np.asarray(classes).ravel()],
                       strata=data.get("strata"), probabilities=data.get("probabilities"),
                       probability_classes=None if data.get("probability_classes") is None else
                       [str(c) for c in np.asarray(data["probability_classes"]).ravel()],
                       times=data.get("times"), source=str(path),
                       output_type=str(np.asarray(out_type).ravel()[0]) if out_type is not None else "sigmoid")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz pool file; a file that is not one (empty, text, a lone .npy) is named as such.

    Checked by its first bytes, since numpy reads anything not a zip as a pickle and calls it "pickled data".
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as e:
        raise PoolFileError(f"{path} cannot be read ({e.strerror or e})") from e
    if not head:
        raise PoolFileError(f"{path} is empty (0 bytes): write the pool again with numpy.savez")
    if head.startswith(b"\x93NUMPY"):
        raise PoolFileError(f"{path} holds a single array (.npy), not an .npz archive of named fields: write it "
                            f"with numpy.savez(path, embeddings=..., labels=...)")
    if not head.startswith(b"PK"):
        raise PoolFileError(f"{path} is not a readable .npz archive (a zip of arrays written by numpy.savez): it holds "
                            f"something else (text?); give the pool file itself")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise PoolFileError(f"{path} is not a readable .npz file of plain arrays ({e}); write it again with "
                            f"numpy.savez") from e


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow comes with streamlit
        raise PoolFileError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise PoolFileError(f"{path} is not a readable Parquet file ({type(e).__name__}: {e})") from e
    out: dict[str, np.ndarray] = {}
    meta = table.schema.metadata or {}
    for name in table.column_names:
        col = table.column(name)
        if name in ("embeddings", "labels_multi", "probabilities"):
            try:
                out[name] = np.array(col.to_pylist(), dtype=bool if name == "labels_multi" else np.float64)
            except (ValueError, TypeError) as e:
                raise PoolFileError(f"{path}: column {name!r} must hold one equal-length list per row ({e})") from e
        else:
            out[name] = np.asarray(col.to_pylist(), dtype=object)
    for key in ("classes", "probability_classes"):  # lists of names, kept in the schema's metadata
        raw = meta.get(key.encode())
        if raw is not None:
            import json

            out[key] = np.array(json.loads(raw.decode()), dtype=object)
    return out


def from_workspace(store, embedding_space: Optional[str] = None) -> LabeledPool:
    """The store's own labelled clips with their embeddings, sites and start times.

    The clips, their labels and the space are those ``finetune`` trains on (``finetune.labelled``: one
    answer per clip, the current model's space, a labelled clip without an embedding an error), so a
    replay describes the rounds the workspace runs. The pretrained model's probabilities (BirdNET's, for
    the audio space) come along, so a replay's first batch can be chosen as the workbench's first round
    is: by the pretrained model's uncertainty.
    """
    from finetune.labelled import labelled_clips
    from store import StoreError

    clips = labelled_clips(store, embedding_space)
    if clips is None:
        raise PoolFileError("the workspace holds no active annotations to simulate on: label clips (push, annotate, "
                            "pull) or give a pool file with --pool")
    ids, x = clips.clip_ids, clips.embeddings(store)
    infos = store.clips(ids.tolist())
    classes = sorted({label for labels in clips.labels for label in labels})
    truth = np.array([[c in labels for c in classes] for labels in clips.labels], dtype=bool)
    times = [np.datetime64(c.start_time) + np.timedelta64(int(round(c.start_s * 1000)), "ms")
             if c.start_time is not None else np.datetime64("NaT") for c in infos]
    probs, pcls, out_type = None, None, "sigmoid"
    try:
        probs = store.probabilities(clips.parent).take(ids)
        pcls, out_type = list(clips.parent.labels), clips.parent.output_type
    except (StoreError, KeyError):
        probs = None
    return from_arrays(x, labels_multi=truth, classes=classes, strata=[c.site or "" for c in infos],
                       probabilities=probs, probability_classes=pcls,
                       times=np.array(times, dtype="datetime64[s]"), source="workspace", output_type=out_type)
