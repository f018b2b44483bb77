"""Shares of one batch from different strategies: exploit the head's uncertainty, keep a share to explore.

An uncertainty strategy trusts the head; a head that is confidently wrong about a whole region of
the embedding space (a species it has never seen) is never uncertain there, so no uncertain pick
goes there. Keeping a share of every batch for a strategy that ignores the head (k-center's
farthest-first coverage) guards against that, at the cost of that share's exploitation. Parts run
in order; each later part treats the clips earlier parts picked like labelled ones (a diversity
strategy keeps away from them), and a part that returns fewer clips than its share leaves the rest
to the parts after it.
"""

from __future__ import annotations

import numbers
from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy
from sampler.parameters import check_nestable

#: A batch from cluster-margin with a fifth kept for k-center exploration (see bench/label_efficiency.py).
DEFAULT_PARTS: tuple[dict[str, Any], ...] = ({"strategy": "cluster_margin", "share": 0.8},
                                              {"strategy": "kcenter", "share": 0.2})


def split_budget(shares: Sequence[float], n: int) -> list[int]:
    """``n`` split by ``shares`` (largest remainder; ties to the earlier part): sums to ``n`` exactly."""
    w = np.asarray(shares, dtype=np.float64)
    exact = n * w / w.sum()
    out = np.floor(exact).astype(int)
    for i in sorted(range(len(w)), key=lambda i: (-(exact[i] - out[i]), i))[: n - int(out.sum())]:
        out[i] += 1
    return out.tolist()


def check_parts(parts: Any) -> list[tuple[str, QueryStrategy, float]]:
    """(label, strategy, share) per part; refuses what cannot run, naming the part."""
    from sampler.registry import build_strategy

    if isinstance(parts, (str, bytes, Mapping)) or not isinstance(parts, Sequence) or len(parts) < 1:
        raise ValueError(f"parts must be a list of {{'strategy': name, 'params': {{...}}, 'share': weight}}, got "
                         f"{parts!r}")
    out = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping) or "strategy" not in part or not set(part) <= {"strategy", "params", "share"}:
            raise ValueError(f"parts[{i}] must be {{'strategy': name, 'params': {{...}}, 'share': weight}}, got {part!r}")
        share = part.get("share", 1.0)
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not share > 0:
            raise ValueError(f"parts[{i}]['share'] must be a number > 0, got {share!r}")
        spec = part["strategy"]
        strat = build_strategy(spec if isinstance(spec, QueryStrategy) else
                               {"strategy": spec, "params": dict(part.get("params") or {})}, parameter=f"parts[{i}]")
        check_nestable(strat.name, f"parts[{i}]")
        out.append((strat.name, strat, float(share)))
    return out


class Blend(QueryStrategy):
    """A batch made of shares from several strategies, later parts keeping away from earlier picks.

    Parameters
    ----------
    parts : list of {"strategy": name, "params": {...}, "share": weight}, default cluster_margin 0.8 + kcenter 0.2
        Run in order; shares are relative weights (normalised), split by largest remainder. A part's
        ``random_state``, when None, is derived from this strategy's seed.
    near_duplicate_radius : float >= 0 or None, default None
        Skip clips within this distance of an excluded clip or of any clip of the batch (whichever part
        picked it); parts' own radii are not used.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None

    Each pick's reason starts with its part and share, then the part's own reason.
    """

    name = "blend"

    def __init__(self, parts: Sequence[Mapping[str, Any]] = DEFAULT_PARTS, near_duplicate_radius: Optional[float] = None,
                 near_duplicate_metric: str = "cosine", random_state: Any = None):
        self.parts = parts
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        p = super()._validate_params()
        p.parts = []
        for i, (label, strat, share) in enumerate(check_parts(self.parts)):
            if "random_state" in strat.get_params(deep=False) and strat.get_params(deep=False)["random_state"] is None:
                strat.set_params(random_state=(p.seed * 7919 + i) % (2**31 - 1))
            p.parts.append((label, strat, share, strat._validate_params()))
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        total = sum(share for _, _, share, _ in params.parts)
        quotas = split_budget([share for _, _, share, _ in params.parts], n_pick)
        out: list[Choice] = []
        taken = np.zeros(0, dtype=np.int64)
        carry = 0
        for (label, strat, share, sp), quota in zip(params.parts, quotas):
            want = quota + carry
            rows = avail if taken.size == 0 else avail[~np.isin(avail, taken)]
            if want <= 0 or rows.size == 0:
                carry = want
                continue
            got = strat._select(rows, min(want, rows.size), ctx.with_(seed=sp.seed), sp)
            carry = want - len(got)
            positions = np.array([c.pos for c in got], dtype=np.int64)
            ctx.add_references(positions)
            taken = np.concatenate([taken, positions])
            out.extend(Choice(pos=c.pos, score=c.score, cluster=c.cluster, stratum=c.stratum,
                              reason=f"{label} share ({100 * share / total:.0f}% of the batch): {c.reason}")
                       for c in got)
        return out
