"""Every strategy's parameters, declared once (scikit-learn's ``_parameter_constraints`` style).

One table per strategy (``STRATEGY_TABLES``) names the parameters it takes; each parameter
(``PARAMETERS``) says what kind of value it is, which values it accepts and what it does. Both faces
are generated from these tables: ``workbench sample``'s options (``add_sampling_options``) and the
app's controls (``workbench.strategy_form``); options given as text become parameters through
``strategy_from_options``, the one mapping of options to a strategy. A test checks each table names
exactly the parameters its class takes.

The vocabularies (uncertainty measures, stratum columns, metrics ...) live here too, so the sampler's
own checks and the tables accept the same values. This module imports nothing beyond the standard
library: building the command line's parser must not load scikit-learn or FAISS.

One nesting rule (``NESTABLE``, ``check_nestable``): ``stratified``'s inner strategy and ``blend``'s
parts are plain strategies, whether given on the command line, in the app or to the library.
"""

from __future__ import annotations

import argparse
import re
import csv
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

# ------------------------------------------------------------------------------------ vocabularies
# Every measure and how a reason sentence names it. A test checks this equals the documented list.
UNCERTAINTY_MEASURES: dict[str, str] = {
    "max_entropy": "max binary entropy",
    "mean_entropy": "mean binary entropy",
    "margin": "1 - margin (top-1 minus top-2 probability)",
    "least_confidence": "1 - top-1 probability",
    "ratio": "top-2 / top-1 probability ratio",
    "categorical_entropy": "normalised categorical entropy",
}

# Pool columns a batch can be stratified over. The test suite checks that this list, the
# docstrings that document ``strata`` and what ``stratum_codes`` accepts are the same.
STRATA_COLUMNS: dict[str, str] = {
    "site": "recording site",
    "device": "recorder",
    "hour": "hour of day of the clip start (local time at the site), '00'-'23'",
    "month": "month of the clip start, '01'-'12'",
    "season": "meteorological season of the clip start: winter = Dec-Feb, spring = Mar-May, summer = Jun-Aug, "
              "autumn = Sep-Nov in the northern hemisphere (hemisphere='north', the default); "
              "shifted by six months with hemisphere='south'",
    "species": "top predicted label under the pool's model version",
}
HEMISPHERES = ("north", "south")
QUOTA_MODES = ("equal", "proportional")

# How the radius is measured (on the raw embeddings, before any PCA). A test checks these are
# the accepted values.
NEAR_DUPLICATE_METRICS: dict[str, str] = {
    "cosine": "cosine distance, 1 - cosine similarity (0 = same direction, 2 = opposite)",
    "l2": "Euclidean distance between the raw embedding vectors",
}
WEIGHT_NAMES = ("uncertainty", "diversity", "balance")
CANDIDATE_MODES = ("random", "uncertain")
_WEIGHT_ALIASES = {"u": "uncertainty", "d": "diversity", "b": "balance", **{n: n for n in WEIGHT_NAMES}}


# ------------------------------------------------------------------------------------ parsing option text
def parse_strata(text: str) -> tuple[str, ...]:
    """``site,hour`` (``''`` for none)."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


def parse_quotas(text: str):
    """``equal``, ``proportional`` or ``site=A:2,site=B|hour=05:1`` (stratum condition : weight)."""
    if text in QUOTA_MODES:
        return text
    out = {}
    for item in text.split(","):
        key, sep, weight = item.strip().rpartition(":")
        try:
            out[key] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise ValueError(f"--quotas {text!r}: expected equal, proportional or items like site=A:2 "
                             f"(stratum condition, colon, weight), got {item!r}")
    return out


def parse_weights(text: str) -> dict[str, float]:
    """``u=1,d=1,b=0.5`` (or the full names uncertainty, diversity, balance)."""
    out = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in _WEIGHT_ALIASES:
            raise ValueError(f"--weights {text!r}: expected items like u=1,d=1,b=0.5 "
                             f"(u/uncertainty, d/diversity, b/balance), got {item!r}")
        try:
            out[_WEIGHT_ALIASES[name]] = float(value)
        except ValueError as e:
            raise ValueError(f"--weights {text!r}: {value!r} is not a number") from e
    return out


def parse_parts(text: str) -> list[dict]:
    """``cluster_margin:0.8,kcenter:0.2`` (strategy : share of the batch)."""
    out = []
    for item in text.split(","):
        name, sep, share = item.strip().partition(":")
        try:
            weight = float(share) if sep else 1.0
        except ValueError as e:
            raise ValueError(f"--parts {text!r}: the share of {name!r} must be a number, got {share!r}") from e
        if name not in offered_strategies():
            raise ValueError(f"--parts {text!r}: {name!r} is not a strategy ({', '.join(offered_strategies())})")
        out.append({"strategy": name, "share": weight})
    return out


def parse_custom_columns(items: Sequence[str]) -> dict[str, dict[int, str]]:
    """``NAME=FILE.csv`` items: a CSV of clip_id,value rows (a header row is skipped)."""
    out: dict[str, dict[int, str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--custom-column {item!r}: expected NAME=FILE.csv (rows: clip_id,value)")
        try:
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
        except OSError as e:
            raise ValueError(f"--custom-column {name}: cannot read {path}: {e.strerror}") from e
        mapping: dict[int, str] = {}
        for n, row in enumerate(rows):
            if not row or (n == 0 and not row[0].strip().lstrip("-").isdigit()):
                continue
            if len(row) < 2:
                raise ValueError(f"--custom-column {name}: {path} line {n + 1} needs clip_id,value, got {row!r}")
            try:
                mapping[int(row[0])] = row[1]
            except ValueError as e:
                raise ValueError(f"--custom-column {name}: {path} has a clip id that is not an integer ({e})") from e
        out[name] = mapping
    return out


def _no_pca(value: int) -> Optional[int]:
    return None if value == 0 else value


# ------------------------------------------------------------------------------------ the parameters
Kind = Literal["choice", "multi", "int", "float", "text", "lines"]


@dataclass(frozen=True)
class Parameter:
    """One strategy parameter: its kind of value, accepted values, help, and how its option's text is read.

    ``kind`` is how a person gives it: ``choice`` (one of ``choices``), ``multi`` (some of ``choices``,
    or other names), ``int``, ``float``, ``text`` (parsed by ``parse``) or ``lines`` (repeatable items).
    """

    name: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    parse: Optional[Callable[[Any], Any]] = None  # the option's value (as argparse gives it) -> the parameter's
    flag: str = ""  # the option, when not --name-with-dashes
    metavar: Optional[str] = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def value(self, given: Any) -> Any:
        """The parameter's value from its option's value (not None)."""
        return self.parse(given) if self.parse is not None else given

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """This parameter as an option of ``parser`` (default None: the strategy's own default)."""
        kwargs: dict[str, Any] = {"dest": self.name, "help": self.help.replace("%", "%%")}
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.kind == "choice":
            kwargs["choices"] = list(self.choices)
        elif self.kind in ("int", "float"):
            kwargs["type"] = int if self.kind == "int" else float
        elif self.kind == "lines":
            kwargs["action"] = "append"
        parser.add_argument(self.option, **kwargs)


_PARAMETERS = (
    Parameter("candidate_factor", "float", "uncertain_diverse: consider the budget x this most uncertain clips "
                                           "(default 20)"),
    Parameter("strata", "multi", f"comma-separated stratum columns, '' for none ({', '.join(STRATA_COLUMNS)} or a "
                                 "--custom-column); default: the strategy's (uncertain_diverse: site,hour,species)",
              choices=tuple(STRATA_COLUMNS), parse=parse_strata),
    Parameter("uncertainty", "choice", "uncertainty measure (default: the one that fits the model's outputs: margin "
                                       "for sigmoid ones such as BirdNET and the heads, categorical_entropy for "
                                       "softmax; see sampler.uncertainty)", choices=tuple(UNCERTAINTY_MEASURES)),
    Parameter("quotas", "text", "equal | proportional | weights per stratum, e.g. site=A:2,site=B:1 (conditions may "
                                "join columns: site=A|hour=05:3)", parse=parse_quotas),
    Parameter("min_per_stratum", "int", "clips every stratum gets first (rarest strata first)"),
    Parameter("weights", "text", "combined: u=1,d=1,b=0.5 (uncertainty, diversity, stratum balance)",
              parse=parse_weights),
    Parameter("pca", "int", "PCA dimensions before clustering or distances (0 = none)", parse=_no_pca),
    Parameter("n_candidates", "int", "candidate clips read from the pool (default 50 x budget, at least 20,000, "
                                     "at most 100,000)"),
    Parameter("n_clusters", "int", "k-means clusters (default: the budget)"),
    Parameter("k_neighbors", "int", "typiclust / cold_start: neighbours defining typicality"),
    Parameter("candidates", "choice", "kcenter / typiclust: candidate pool", choices=CANDIDATE_MODES),
    Parameter("near_duplicate_radius", "float", "skip clips within this distance of a labelled, pending or picked "
                                                "clip"),
    Parameter("near_duplicate_metric", "choice", "how that distance is measured (default cosine: 1 - cosine "
                                                 "similarity)", choices=tuple(NEAR_DUPLICATE_METRICS)),
    Parameter("hemisphere", "choice", "for the season column (default north)", choices=HEMISPHERES),
    Parameter("custom_columns", "lines", "extra stratum column from a CSV of clip_id,value (repeatable)",
              parse=parse_custom_columns, flag="--custom-column", metavar="NAME=FILE.csv"),
    Parameter("parts", "text", "blend: strategies and their shares of the batch, e.g. cluster_margin:0.8,kcenter:0.2 "
                               "(each with its default parameters)", parse=parse_parts),
    # more_like_these (`workbench search`): examples are its positional clip ids
    Parameter("bins", "int", "audit: equal-width bins of the top-1 score, an equal share of the batch each (default 5)"),
    Parameter("min_score", "float", "range_conflict: a conflict's top-1 score is above this (default 0.5)"),
    Parameter("max_occurrence", "float", "range_conflict: a conflict's species has a range occurrence below this at "
                                         "the clip's site-week (default 0.03, BirdNET-Analyzer's cut)"),
    Parameter("geofence", "text", "range_conflict: SpeciesNet-style geofence rules (JSON); images whose top label is "
                                  "fenced at their country are conflicts too (`workbench sample` uses the "
                                  "workspace's, set by `workbench geofence FILE`)", metavar="FILE"),
    Parameter("examples", "text", "example clip ids"),
    Parameter("metric", "choice", "embedding distance (default cosine)", choices=tuple(NEAR_DUPLICATE_METRICS)),
)
#: Every strategy parameter by name (``random_state`` is ``--seed``, ``inner`` is ``--inner``).
PARAMETERS: dict[str, Parameter] = {p.name: p for p in _PARAMETERS}


# ------------------------------------------------------------------------------------ the strategies
@dataclass(frozen=True)
class StrategyTable:
    """What a strategy takes: its parameters (beside ``random_state`` when ``seeded``, and ``stratified``'s
    ``inner``), a one-line summary, and whether it may run nested (a stratum's inner strategy, a blend part)."""

    name: str
    summary: str
    parameters: tuple[str, ...]
    seeded: bool = True
    nestable: bool = False
    offered: bool = True  # by `workbench sample` and the app's Sample page (more_like_these: `workbench search`)

    def constructor_parameters(self) -> set[str]:
        """Every keyword the strategy's constructor takes."""
        return {*self.parameters, *(["random_state"] if self.seeded else []),
                *(["inner"] if self.name == "stratified" else [])}


_GUARD = ("near_duplicate_radius", "near_duplicate_metric")
_STRATA = ("strata", "quotas", "min_per_stratum", "custom_columns", "hemisphere")
_TABLES = (
    StrategyTable("uncertain_diverse", "most uncertain, spread over k-means clusters, equal site/hour/species quotas",
                  ("candidate_factor", "n_clusters", "pca", "strata", "uncertainty", *_GUARD), nestable=True),
    StrategyTable("uncertainty", "the most uncertain clips", ("n_candidates", "uncertainty", *_GUARD),
                  seeded=False, nestable=True),
    StrategyTable("random", "seeded uniform sample (the baseline to beat)", _GUARD, nestable=True),
    StrategyTable("kcenter", "core-set: farthest-first from labelled and picked clips",
                  ("candidates", "n_candidates", "pca", "uncertainty", *_GUARD), nestable=True),
    StrategyTable("typiclust", "typical clips of the largest clusters",
                  ("candidates", "k_neighbors", "n_candidates", "n_clusters", "pca", "uncertainty", *_GUARD),
                  nestable=True),
    StrategyTable("cluster_margin", "lowest-margin clips, small clusters first",
                  ("n_candidates", "n_clusters", "pca", "uncertainty", *_GUARD), nestable=True),
    StrategyTable("combined", "greedy w_u x uncertainty + w_d x diversity + w_b x stratum balance (--weights)",
                  ("n_candidates", "pca", "uncertainty", "weights", *_STRATA, *_GUARD), nestable=True),
    StrategyTable("stratified", "quotas per stratum, --inner strategy inside each", _STRATA),
    StrategyTable("cold_start", "representative batch with no labels or scores: typical clips within proportional "
                                "quotas", ("k_neighbors", "n_candidates", "n_clusters", "pca", *_STRATA, *_GUARD)),
    StrategyTable("blend", "shares of one batch from several strategies (--parts cluster_margin:0.8,kcenter:0.2)",
                  ("parts", *_GUARD)),
    StrategyTable("audit", "random within top-1 score bins: labels that estimate precision (not active learning)",
                  ("bins", *_GUARD)),
    StrategyTable("range_conflict", "confident detections of species out of range at their site-week (BirdNET's "
                                    "range model) or fenced at their country (a geofence), then the most uncertain",
                  ("min_score", "max_occurrence", "geofence", "n_candidates", "uncertainty", *_GUARD), seeded=False,
                  nestable=True),
    StrategyTable("more_like_these", "nearest neighbours of example clips (targeted search)",
                  ("examples", "metric", *_GUARD), seeded=False, offered=False),
)
#: Every strategy's table by its stored name, in the order `workbench sample --strategy` offers them.
STRATEGY_TABLES: dict[str, StrategyTable] = {t.name: t for t in _TABLES}
#: What may run inside another strategy: ``stratified``'s inner strategy and ``blend``'s parts.
NESTABLE: tuple[str, ...] = tuple(t.name for t in _TABLES if t.nestable)
DEFAULT_INNER = "uncertainty"


def offered_strategies() -> dict[str, str]:
    """What ``workbench sample --strategy`` and the app offer, by name, with their summaries."""
    return {t.name: t.summary for t in STRATEGY_TABLES.values() if t.offered}


def sampling_parameters() -> list[Parameter]:
    """The parameters of every offered strategy, each once, in declaration order (the options of `sample`)."""
    used = {p for t in STRATEGY_TABLES.values() if t.offered for p in t.parameters}
    return [p for p in PARAMETERS.values() if p.name in used]


def check_nestable(name: str, parameter: str) -> None:
    """Refuse a strategy that cannot run inside another (as ``parameter``), naming those that can."""
    if name == "stratified":
        raise ValueError(f"{parameter} must not itself be 'stratified'; list all columns in strata instead")
    if name not in NESTABLE:
        raise ValueError(f"{parameter} is {name!r}; a strategy inside another (stratified's inner, a blend's "
                         f"parts) is a plain one: {', '.join(NESTABLE)}")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """``--strategy``, ``--inner`` and one option per strategy parameter, generated from the tables."""
    from sampler.defaults import DEFAULT_STRATEGY

    offered = offered_strategies()
    summaries = "; ".join(f"{n}: {d}" for n, d in offered.items())
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=list(offered), metavar="NAME",
                        help=f"query strategy (default {DEFAULT_STRATEGY}). {summaries}")
    for p in sampling_parameters():
        p.add_to(parser)
    parser.add_argument("--inner", choices=list(NESTABLE), metavar="NAME",
                        help=f"stratified: the strategy run inside each stratum (default {DEFAULT_INNER}; one of "
                             f"{', '.join(NESTABLE)})")


# ------------------------------------------------------------------------------------ options -> strategy
def given_parameters(options: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters from option values (as argparse gives them; None or [] = not given), parsed."""
    return {name: PARAMETERS[name].value(value) for name, value in options.items()
            if name in PARAMETERS and value is not None and value != []}


def strategy_from_args(args: argparse.Namespace):
    """The strategy of parsed ``add_sampling_options`` options (and ``--seed``): what ``workbench sample`` runs,
    its settings checked now, with errors naming the options (``--pca``), not the parameters (``pca``)."""
    options = {p.name: getattr(args, p.name, None) for p in sampling_parameters()}
    strategy = strategy_from_options(args.strategy, options, seed=args.seed, inner=getattr(args, "inner", None))
    try:
        strategy._validate_params()  # what query() checks first, before any pool is read
    except ValueError as e:
        raise ValueError(as_options(str(e))) from e
    return strategy


_NAMED = re.compile(r"^(?P<name>[a-z_]+)(?P<index>(?:\[[^\]]*\])*) ")


def as_options(message: str) -> str:
    """A strategy's error as the command line says it: ``pca must be None or ...`` -> ``--pca must be 0 (none)
    or ...``, ``parts[0]['share'] ...`` -> ``--parts (part 1, its share) ...``; other messages as they are."""
    for name, param in PARAMETERS.items():  # "... in strata=('planet',) ... given in custom_columns)"
        message = re.sub(rf"\bin {name}=", f"in {param.option} ", message)
        message = re.sub(rf"\bin {name}\b(?!=)", f"in {param.option}", message)
    m = _NAMED.match(message)
    if not m or m["name"] not in PARAMETERS:
        return message
    where = ""
    keys = re.findall(r"\[([^\]]*)\]", m["index"])
    if keys:
        where = " (" + ", ".join(f"part {int(k) + 1}" if k.isdigit() else f"its {k.strip(chr(39))}"
                                 for k in keys) + ")"
    rest = message[m.end():]
    rest = rest.replace("must be None or", "must be 0 (none) or" if m["name"] == "pca" else "must be left out or", 1)
    return f"{PARAMETERS[m['name']].option}{where} {rest}"


def strategy_from_options(name: str, options: Mapping[str, Any], *, seed: int, inner: Optional[str] = None):
    """The strategy ``name`` with every option given (unparsed option values by parameter name), seeded.

    For ``stratified`` an option goes to the wrapper when it takes it, else to ``inner``. An option the
    strategy does not take is a ValueError naming the options it does take.
    """
    from sampler.registry import STRATEGIES  # scikit-learn loads here, not with the parser

    given = given_parameters(options)
    table = STRATEGY_TABLES[name]
    params = table.constructor_parameters()
    if name == "stratified":
        inner_name = inner or DEFAULT_INNER
        check_nestable(inner_name, "--inner")
        inner_table = STRATEGY_TABLES[inner_name]
        outer = {k: v for k, v in given.items() if k in params}
        nested = {k: v for k, v in given.items() if k not in params and k in inner_table.parameters}
        rest = [k for k in given if k not in outer and k not in nested]
        if inner_table.seeded:
            nested["random_state"] = seed
        if rest:
            raise ValueError(f"{', '.join(PARAMETERS[k].option for k in rest)} apply to neither --strategy "
                             f"stratified nor --inner {inner_name}")
        outer["inner"] = STRATEGIES[inner_name](**nested)
        outer["random_state"] = seed
        return STRATEGIES[name](**outer)
    if inner:
        raise ValueError(f"--inner applies only to --strategy stratified, not {name}")
    wrong = [k for k in given if k not in params]
    if wrong:
        accepted = sorted(PARAMETERS[k].option for k in table.parameters)
        raise ValueError(f"{', '.join(PARAMETERS[k].option for k in wrong)} do(es) not apply to --strategy {name} "
                         f"(its options: {', '.join(accepted) or 'none'}, --seed)")
    if table.seeded:
        given["random_state"] = seed
    return STRATEGIES[name](**given)


__all__ = ["CANDIDATE_MODES", "DEFAULT_INNER", "HEMISPHERES", "NEAR_DUPLICATE_METRICS", "NESTABLE", "PARAMETERS",
           "QUOTA_MODES", "STRATA_COLUMNS", "STRATEGY_TABLES", "UNCERTAINTY_MEASURES", "WEIGHT_NAMES", "Parameter",
           "StrategyTable", "add_sampling_options", "check_nestable", "given_parameters", "offered_strategies",
           "parse_custom_columns", "parse_parts", "parse_quotas", "parse_strata", "parse_weights",
           "sampling_parameters", "strategy_from_args", "strategy_from_options"]
