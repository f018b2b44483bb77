"""Rounds of fine-tuning as learning curves: what each round of labels bought, per class and per site.

Read from the metrics ``finetune`` stores with every classifier head (see ``finetune.evaluate``);
heads recorded before a metric existed simply have no point for it.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import pandas as pd

from store import ModelVersion, Store
from store.roles import Records

XAxis = Literal["n_train", "n_clips"]
X_AXES: tuple[str, ...] = ("n_train", "n_clips")


def heads(store: Records) -> list[ModelVersion]:
    """The fine-tuned heads (kind "classifier"), oldest first: one per real round."""
    return [mv for mv in store.model_versions() if mv.kind == "classifier"]


def _check_x(x: str) -> None:
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)} (labelled clips in training / in all), got {x!r}")


def learning_curve(store: Store, x: XAxis = "n_train") -> pd.DataFrame:
    """Per head: labels (``x``), macro recall, accuracy and the worst site with its recall."""
    _check_x(x)
    rows = []
    for round_no, mv in enumerate(heads(store), start=1):
        m = mv.metrics or {}
        rows.append({"round": round_no, "model": mv.name, "created": mv.created_at, "labels": m.get(x),
                     "macro_recall": m.get("macro_recall"), "accuracy": m.get("accuracy"),
                     "worst_site": m.get("worst_site"), "worst_site_recall": m.get("worst_site_recall")})
    frame = pd.DataFrame(rows, columns=["round", "model", "created", "labels", "macro_recall", "accuracy",
                                        "worst_site", "worst_site_recall"])
    numbers = ["labels", "macro_recall", "accuracy", "worst_site_recall"]
    frame[numbers] = frame[numbers].apply(pd.to_numeric, errors="coerce")  # a missing metric is NaN, not None
    return frame


def _breakdown(store: Store, x: XAxis, key: str, name: str) -> pd.DataFrame:
    _check_x(x)
    rows = []
    for round_no, mv in enumerate(heads(store), start=1):
        m = mv.metrics or {}
        for item, recall in sorted((m.get(key) or {}).items()):
            rows.append({"round": round_no, "model": mv.name, "labels": m.get(x), name: item, "recall": recall})
    return pd.DataFrame(rows, columns=["round", "model", "labels", name, "recall"])


def class_curves(store: Store, x: XAxis = "n_train") -> pd.DataFrame:
    """Recall of each class per head (long form): which species the labels have taught so far."""
    return _breakdown(store, x, "recall_per_class", "class")


def site_curves(store: Store, x: XAxis = "n_train") -> pd.DataFrame:
    """Macro recall per site (stratum) per head (long form): stratified sampling should lift the worst one."""
    return _breakdown(store, x, "recall_per_site", "site")


def confusion_frame(mv: ModelVersion) -> Optional[pd.DataFrame]:
    """The head's confusion counts (long form: true, predicted, clips, share of the true label's clips),
    or None for a head fine-tuned before they were recorded."""
    confusion: Any = (mv.metrics or {}).get("confusion")
    if not confusion or not confusion.get("counts"):
        return None
    support = (mv.metrics or {}).get("support_per_class") or {}
    rows = []
    for true, counts in zip(confusion["labels"], confusion["counts"]):
        total = support.get(true) or 0
        for predicted, n in zip(confusion["columns"], counts):
            rows.append({"true": true, "predicted": predicted, "clips": int(n),
                         "share": (n / total) if total else 0.0})
    return pd.DataFrame(rows, columns=["true", "predicted", "clips", "share"])


def calibration_table(mv: ModelVersion) -> Optional[pd.DataFrame]:
    """Per class of a calibrated head: expected calibration error before and after (cross-fitted), the audit
    labels behind it, the Platt map (scale, shift) or why it stayed uncalibrated; None before calibration."""
    cal: Any = (mv.metrics or {}).get("calibration")
    if not cal or not cal.get("classes"):
        return None
    rows = []
    for label, c in sorted(cal["classes"].items()):
        before, after = c.get("before") or {}, c.get("after") or {}
        rows.append({"class": label, "ece_before": before.get("ece"), "ece_after": after.get("ece"),
                     "n": before.get("n"), "scale": c.get("scale"), "shift": c.get("shift"),
                     "note": (cal.get("skipped") or {}).get(label, "")})
    return pd.DataFrame(rows, columns=["class", "ece_before", "ece_after", "n", "scale", "shift", "note"])


def reliability_frame(mv: ModelVersion) -> Optional[pd.DataFrame]:
    """Reliability diagram points (long form: class, stage before/after, mean predicted, observed rate, clips)."""
    cal: Any = (mv.metrics or {}).get("calibration")
    if not cal or not cal.get("classes"):
        return None
    rows = []
    for label, c in sorted(cal["classes"].items()):
        for stage in ("before", "after"):
            for conf, obs, n in (c.get(stage) or {}).get("bins", []):
                rows.append({"class": label, "stage": stage, "predicted": conf, "observed": obs, "clips": n})
    return pd.DataFrame(rows, columns=["class", "stage", "predicted", "observed", "clips"])


def validation_table(mv: ModelVersion) -> Optional[pd.DataFrame]:
    """Per species of a validated model (``workbench validate``): its auto-validation threshold or why not;
    None when the model was never validated."""
    v: Any = (mv.metrics or {}).get("auto_validation")
    if not v:
        return None
    ece = {label: r.get("ece") for label, r in (v.get("reliability") or {}).items()}
    rows = [{"species": s["label"], "threshold": s["threshold"], "audit_positives": s["n_positive"],
             "audit_detections": s["n_detections"], "audit_precision": s["precision"], "ece": ece.get(s["label"]),
             "note": s["note"]}
            for s in v.get("species", []) if s["threshold"] is not None or s["n_positive"]]
    return pd.DataFrame(rows, columns=["species", "threshold", "audit_positives", "audit_detections",
                                       "audit_precision", "ece", "note"])


__all__ = ["X_AXES", "calibration_table", "class_curves", "confusion_frame", "heads", "learning_curve",
           "reliability_frame", "site_curves", "validation_table"]
