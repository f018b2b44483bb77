"""Close the loop: train a head on the expert labels, evaluate it, record it, re-score the pool with it.

After ``finetune`` the head is the store's current model version, so the next ``sample`` ranks clips
by the head's uncertainty instead of BirdNET's.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from sklearn.base import clone

from finetune.audit_labels import AuditLabels, audit_labels, label_truth
from finetune.calibration import calibrate_logits, fold_into
from finetune.evaluate import evaluate, split_key, stratified_split
from finetune.head import ClassifierHead, head_for, label_matrix
from finetune.labelled import FinetuneError, labelled_clips, resolve_space
from finetune.scoring import DEFAULT_CHUNK
from store.locks import LockName
from store.roles import Records, Vectors
from store.schema import ModelKind, ModelVersion
from store.store import Store

log = logging.getLogger(__name__)


def _next_name(store: Records, space: str) -> str:
    versions = store.model_versions()
    taken = {m.name for m in versions}
    n = 1 + sum(1 for m in versions if m.kind == ModelKind.CLASSIFIER and m.embedding_space == space)
    while f"head-{space}-{n}" in taken:
        n += 1
    return f"head-{space}-{n}"


def finetune(store: Store, models_dir: Path | str, *, embedding_space: Optional[str] = None,
             test_size: float = 0.25, random_state: Optional[int] = 0, C: float = 1.0,
             class_weight: Optional[str] = "balanced", max_iter: int = 1000, refit: bool = True,
             chunk_size: int = DEFAULT_CHUNK, calibrate: bool = True,
             progress: Optional[Callable[[int, int], None]] = None) -> ModelVersion:
    """Train a head on the active annotations, evaluate it on a held-out split, record and apply it.

    The split is seeded by ``random_state`` and stratified by each clip's rarest label where counts
    allow; metrics (subset accuracy, macro recall, recall per class and per site, n_train, n_test)
    describe the head fitted on the training part. With ``refit`` (default) the stored head is then
    refitted on every label, so no expert label is wasted; the metrics estimate its quality. The
    new model version (kind "classifier", parent = the embedding model) re-scores the whole pool.
    The head's weights are saved in ``models_dir``.
    Two fine-tunes of one store never run at once (the second waits for the ``finetune`` lock).

    With ``calibrate`` (default) the audit stream's labels (``workbench sample --strategy audit``) are kept
    out of training: the head's probabilities are calibrated on them (``finetune.calibration``: Platt per
    class, or a temperature; reliability and ECE per class in ``metrics["calibration"]``) and
    ``finetune.validate`` can state a precision on data the head never saw.
    """
    with store.lock(LockName.FINETUNE):
        return _finetune(store, models_dir, embedding_space=embedding_space, test_size=test_size,
                         random_state=random_state, C=C, class_weight=class_weight, max_iter=max_iter, refit=refit,
                         chunk_size=chunk_size, calibrate=calibrate, progress=progress)


def _finetune(store: Store, models_dir: Path | str, *, embedding_space: Optional[str] = None,
             test_size: float = 0.25, random_state: Optional[int] = 0, C: float = 1.0,
             class_weight: Optional[str] = "balanced", max_iter: int = 1000, refit: bool = True,
             chunk_size: int = DEFAULT_CHUNK, calibrate: bool = True,
             progress: Optional[Callable[[int, int], None]] = None) -> ModelVersion:
    space, _ = resolve_space(store, embedding_space)  # an empty store is told to ingest first
    clips = labelled_clips(store, space)
    if clips is None:
        raise FinetuneError("no active annotations in the store: label some clips in Label Studio and pull "
                            "them (`workbench pull`) before fine-tuning")
    space, parent, clip_ids, labels, n_annotations = (clips.space, clips.parent, clips.clip_ids, clips.labels,
                                                      clips.n_annotations)
    audit = audit_labels(store) if calibrate else None
    held_out: Optional[AuditLabels] = None
    trained_on_audit: list[int] = []
    if audit is not None and len(audit):
        is_audit = np.isin(clip_ids, audit.clip_ids)
        rest = [labels[i] for i in np.flatnonzero(~is_audit)]
        if len({tuple(x) for x in rest}) >= 2:
            # audit labels are the pool's random sample: kept out of training, they calibrate the head and
            # let `workbench validate` state a precision the head has not seen
            held_out = audit.subset(np.flatnonzero(np.isin(audit.clip_ids, clip_ids[is_audit])))
            clip_ids, labels = clip_ids[~is_audit], rest
        else:
            trained_on_audit = clip_ids[is_audit].tolist()
            log.warning("only %d label(s) outside the audit stream: the head trains on the %d audit label(s) too, "
                        "so it is not calibrated and cannot be auto-validated", len(rest), len(trained_on_audit))
    if len({tuple(x) for x in labels}) < 2:
        only = labels[0]
        other = ("label some clips with the species they hold" if not only or set(only) <= {"Noise", "Other"}
                 else "label clips of another species, or clips holding none of them (Noise)")
        raise FinetuneError(f"all {len(labels)} labelled clips carry the same labels {only!r}: a classifier needs "
                            f"at least two classes to contrast; {other}")

    X = replace(clips, clip_ids=clip_ids, labels=labels).embeddings(store)  # the clips left after the audit
    classes = sorted({label for row in labels for label in row})
    truth = label_matrix(labels, classes)

    train, test, stratified = stratified_split(split_key(labels), test_size, random_state)
    unfitted = head_for(parent.output_type, labels, C=C, class_weight=class_weight, max_iter=max_iter,
                        random_state=random_state)
    params, output_type = unfitted.get_params(), unfitted.output_type
    head = clone(unfitted).fit(X[train], [labels[i] for i in train], classes=classes)
    sites = [c.site or "unknown" for c in store.clips(clip_ids[test].tolist())]
    metrics = evaluate(truth[test], head.predict(X[test]), classes, sites, random_state=random_state or 0)
    metrics.update({"n_annotations": n_annotations, "n_clips": int(clip_ids.size), "n_train": int(train.size),
                    "test_size": test_size, "stratified_split": stratified, "threshold": 0.5,
                    "constant_classes": list(head.constant_classes_)})
    if refit:
        head = clone(unfitted).fit(X, labels, classes=classes)
    metrics["n_fit"] = int(clip_ids.size if refit else train.size)
    metrics["audit_held_out"] = len(held_out) if held_out is not None else 0
    if trained_on_audit:
        metrics["trained_on_audit_clips"] = trained_on_audit
    if held_out is not None:
        metrics["calibration"] = _calibrate(store, head, held_out, space, output_type, random_state)

    name = _next_name(store, space)
    artifact = head.save(Path(models_dir) / f"{name}.npz")
    mv = store.add_model_version(ModelVersion(
        name=name, kind=ModelKind.CLASSIFIER, embedding_space=space, dim=len(classes), labels=classes,
        params={**params, "test_size": test_size, "refit": refit}, metrics=metrics,
        artifact_path=str(artifact), parent_id=parent.id, ready=False, output_type=output_type))
    # the head is one linear layer on the embedding: its probability rows are recomputed, never stored
    store.set_output_layer(mv, head.coef_, head.intercept_, output_type)
    return rescore(store, mv, head, chunk_size=chunk_size, progress=progress)


def _calibrate(store: Vectors, head: ClassifierHead, audit: AuditLabels, space: str, output_type: str,
               random_state: Optional[int]) -> dict:
    """Fit the calibration map on the held-out audit labels and fold it into ``head`` (in place)."""
    view = store.embeddings(space)
    audit = audit.agreed()  # an estimate: fitted where the experts agree (validate judges the rest conservatively)
    audit = audit.subset(np.flatnonzero(view.contains(audit.clip_ids)), f"no embedding in space {space!r}")
    classes = [str(c) for c in head.classes_]
    if not len(audit):
        return {"method": "none", "n_audit": 0, "skipped": {}, "left_out": dict(audit.left_out)}
    logits = head.decision_function(view.take(audit.clip_ids))
    report = calibrate_logits(logits, label_truth(audit.labels, classes), classes, output_type,
                              weights=audit.weights, random_state=random_state)
    head.coef_, head.intercept_ = fold_into(head.coef_, head.intercept_, classes, report)
    return {**report.as_metrics(), "left_out": dict(audit.left_out)}


def rescore(store: Store, model_version: ModelVersion, head: Optional[ClassifierHead] = None, *,
            chunk_size: int = DEFAULT_CHUNK,
            progress: Optional[Callable[[int, int], None]] = None) -> ModelVersion:
    """Score every clip with embeddings in the head's space, ``chunk_size`` rows at a time.

    The embedding matrix is memory-mapped and read chunk by chunk, so the pool never sits in RAM at
    once. Rerunning after a crash is safe: outputs are replaced, not duplicated. Records the number
    of clips scored in the version's metrics.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if head is None:
        if not model_version.artifact_path:
            raise FinetuneError(f"model version {model_version.name!r} has no artifact to load a head from")
        head = ClassifierHead.load(model_version.artifact_path)
    if list(head.classes_) != list(model_version.labels):
        raise FinetuneError(f"head labels {list(head.classes_)!r} differ from model version "
                            f"{model_version.name!r} labels {list(model_version.labels)!r}")
    view = store.embeddings(model_version.embedding_space)
    for start in range(0, len(view), chunk_size):
        stop = min(start + chunk_size, len(view))
        ids = np.asarray(view.ids[start:stop], dtype=np.int64)
        probs = head.predict_proba(np.asarray(view.data[start:stop], dtype=np.float32))
        store.write_model_outputs(model_version, ids, probs)
        if progress is not None:
            progress(stop, len(view))  # clips re-scored so far, of all
    store.merge_model_metrics(model_version.id, scored_clips=len(view))
    return store.update_model_version(model_version.id, ready=True)
