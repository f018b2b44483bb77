"""Image pre-annotations under a geofence: a species not allowed where the camera stands is never pre-ticked.

SpeciesNet does not report a fenced top label: it reports the first allowed ancestor (``store.geofence``'s
roll-up), which is not a species a task offers. So when a clip's top label is fenced at its recording's
country, nothing is pre-ticked and the suggestion shows the roll-up instead; a fenced species further down is
never pre-ticked and says so. Every species stays a choice: an expert may well confirm a rarity.
"""

from __future__ import annotations

from typing import Optional, Sequence

from annotation.labelset import display_label
from store.geofence import Geofence


def fenced_choices(predictions: Sequence[tuple[str, float]], offered: Sequence[dict[str, str]],
                   choices: Sequence[str], fence: Optional[Geofence], country: Optional[str],
                   admin1: Optional[str] = None) -> tuple[list[str], list[dict[str, str]]]:
    """(the ``choices`` a pre-annotation may tick, the task's ``offered`` suggestions with fenced ones said so).

    ``predictions`` are the clip's (label, score), ``offered`` its suggestions (``{"value": text, "alias":
    label}``). Without a geofence or a country nothing changes.
    """
    if fence is None or not country or not predictions:
        return list(choices), list(offered)
    fenced = {label for label, _ in predictions if fence.fenced(label, country, admin1)}
    if not fenced:
        return list(choices), list(offered)
    place = country + (f"/{admin1}" if admin1 else "")
    ranked = sorted(predictions, key=lambda x: -x[1])
    top, top_score = ranked[0]
    labels, scores = [label for label, _ in ranked], [score for _, score in ranked]
    rolled = fence.roll_up(scores, labels, country, admin1) if top in fenced else None
    out = []
    for o in offered:
        if o["alias"] not in fenced:
            out.append(dict(o))
            continue
        score = dict(predictions).get(o["alias"], 0.0)
        name = f"{display_label(o['alias'])} {score:.2f}"
        value = (f"{rolled} (rolled up: {name} is not allowed in {place})" if o["alias"] == top and rolled
                 else f"{name} (not allowed in {place})")
        out.append({**o, "value": value})
    tickable = [] if top in fenced else [c for c in choices if c not in fenced]
    return tickable, out


__all__ = ["fenced_choices"]
