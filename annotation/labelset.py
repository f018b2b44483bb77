"""Label sets: the species an annotator may choose from, drawn from what the current model finds in the pool.

Labels are stored exactly as the model names them (BirdNET: ``"Scientific name_Common name"``) so an
annotation maps back to the model's classes without a lookup table; only the display is made readable
(``display_label``). A label set is never edited in place: ``derive_label_set`` makes a new named one.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Iterable, Optional, Sequence

from store import LabelSet, Store
from store.roles import Ledger

log = logging.getLogger(__name__)

DEFAULT_EXTRA = ("Other", "Noise")


def display_label(label: str) -> str:
    """``"Turdus merula_Eurasian Blackbird"`` -> ``"Eurasian Blackbird (Turdus merula)"``; others unchanged."""
    scientific, sep, common = label.partition("_")
    if not sep or not scientific.strip() or not common.strip():
        return label
    if scientific.strip() == common.strip():  # "Dog_Dog", "Gryllus assimilis_Gryllus assimilis"
        return common.strip()
    return f"{common.strip()} ({scientific.strip()})"


def _default_name(prefix: str, labels: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join(labels).encode()).hexdigest()[:8]
    return f"{prefix}-{len(labels)}labels-{digest}"


def label_set_from_pool(store: Store, *, min_confidence: float = 0.5, max_species: int = 50,
                        extra: Iterable[str] = DEFAULT_EXTRA, name: Optional[str] = None) -> LabelSet:
    """The species the current model finds in the pool, most frequent first, plus ``extra`` (Other, Noise).

    A species counts when it is a clip's top label with top-1 probability >= ``min_confidence``; at most
    ``max_species`` are kept. The default name is derived from the model and the labels, so calling this
    twice on an unchanged pool returns the same stored set.
    """
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must be within [0, 1], got {min_confidence!r}")
    if int(max_species) < 1:
        raise ValueError(f"max_species must be at least 1, got {max_species!r}")
    pool = store.pool()
    confident = pool.top_label[pool.top1 >= float(min_confidence)]
    counts = Counter(str(x) for x in confident)
    # most frequent first; ties by label so the order is reproducible
    species = [lab for lab, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][: int(max_species)]
    extras = [e for e in extra if e not in species]
    labels = species + extras
    if not species:
        log.warning("no clip of the pool has a top label with probability >= %.2f under model %r: the label "
                    "set holds only %s; lower min_confidence to include species", min_confidence,
                    pool.model_version.name, extras)
    if not labels:
        raise ValueError(f"no species reach min_confidence={min_confidence} and extra is empty: nothing to label")
    return store.add_label_set(name or _default_name(pool.model_version.name, labels), labels)


def derive_label_set(store: Ledger, base: LabelSet, *, add: Iterable[str] = (), remove: Iterable[str] = (),
                     name: Optional[str] = None) -> LabelSet:
    """A new named label set: ``base`` with labels added (at the end, before Other/Noise) and removed; ``base``
    itself when that changes nothing and no ``name`` is asked for (no second set with the same labels)."""
    remove = set(remove)
    unknown = remove - set(base.labels)
    if unknown:
        raise ValueError(f"cannot remove {sorted(unknown)} from label set {base.name!r}: not in it")
    kept = [x for x in base.labels if x not in remove]
    tail = [x for x in kept if x in DEFAULT_EXTRA]
    head = [x for x in kept if x not in DEFAULT_EXTRA]
    head += [x for x in dict.fromkeys(add) if x not in kept]
    labels = head + tail
    if labels == list(base.labels) and name is None:
        return base
    return store.add_label_set(name or _default_name(base.name, labels), labels)
