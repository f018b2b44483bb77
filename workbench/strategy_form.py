"""The sampling strategies as form controls, generated from the tables ``workbench sample``'s options come from.

Each strategy parameter is declared once, in ``sampler.parameters`` (its kind, choices, help text and
option); a control shows it with the strategy's default, and the form's values become a strategy by the
same ``strategy_from_options`` the command line uses: the app and the command line cannot drift apart,
and a form saves exactly the run ``workbench sample`` with the same options would.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Literal, Optional

from sampler.parameters import (DEFAULT_INNER, NESTABLE, PARAMETERS, STRATEGY_TABLES, offered_strategies,
                                strategy_from_options)

ControlKind = Literal["choice", "multi", "int", "float", "text", "lines"]


@dataclass(frozen=True)
class Control:
    """One strategy parameter as a form control: what to draw, with which default, and the CLI option."""

    param: str
    option: str
    kind: ControlKind
    default: Any
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def optional(self) -> bool:
        """The strategy's default is None (decided at query time, e.g. the measure that fits the model)."""
        return self.default is None


def strategy_names() -> list[str]:
    """What ``workbench sample --strategy`` offers, in its order."""
    return list(offered_strategies())


def strategy_description(name: str) -> str:
    return STRATEGY_TABLES[name].summary


def inner_names() -> list[str]:
    """Strategies ``stratified`` may run inside each stratum (``--inner``)."""
    return list(NESTABLE)


def _default_params(name: str) -> dict[str, Any]:
    from sampler import STRATEGIES

    return STRATEGIES[name]().get_params(deep=False)


def _control(param: str, default: Any) -> Control:
    p = PARAMETERS[param]
    shown = {"multi": lambda: tuple(default or ()), "lines": lambda: "",
             "float": lambda: None if default is None else float(default),
             "text": lambda: _as_option_text(param, default)}.get(p.kind, lambda: default)()
    return Control(param, p.option, p.kind, shown, p.choices if p.kind in ("choice", "multi") else (), p.help)


def _as_option_text(param: str, default: Any) -> str:
    """A structured default as the option's text (``site=A:2``, ``u=1,d=1``, ``cluster_margin:0.8,...``)."""
    if default is None:
        return ""
    if isinstance(default, str):
        return default
    if isinstance(default, dict):  # quotas (condition:weight) or weights (name=value)
        return ",".join(f"{k}:{v}" if param == "quotas" else f"{k}={v}" for k, v in default.items())
    if isinstance(default, (list, tuple)) and all(isinstance(d, dict) and "strategy" in d for d in default):
        return ",".join(f"{d['strategy']}:{d['share']}" if "share" in d else str(d["strategy"]) for d in default)
    return ",".join(str(d) for d in default) if isinstance(default, (list, tuple)) else str(default)


def strategy_controls(name: str, inner: Optional[str] = None) -> list[Control]:
    """The controls of strategy ``name`` (for ``stratified``: its own, then those of ``inner``), one per
    parameter its table declares, each showing the strategy's default."""
    own = _default_params(name)
    params = [(p, own.get(p)) for p in sorted(STRATEGY_TABLES[name].parameters)]
    if name == "stratified":
        inner = inner or DEFAULT_INNER
        nested = _default_params(inner)
        params += [(p, nested.get(p)) for p in sorted(STRATEGY_TABLES[inner].parameters) if p not in own]
    return [_control(p, v) for p, v in params]


def _cli_value(control: Control, value: Any) -> Any:
    """A control's value as ``argparse`` would have produced it from the option (None: not given)."""
    if control.kind == "multi":
        return ",".join(value or ())  # '' = no strata, as --strata ''
    if control.kind == "lines":
        items = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        return items or None
    if control.kind == "text":
        return str(value).strip() or None
    if control.param == "pca" and value is None:
        return 0  # an empty box means no PCA: --pca 0
    return value


def build_strategy(name: str, values: dict[str, Any], *, seed: int, inner: Optional[str] = None):
    """The strategy the form describes, built from the equivalent options as ``workbench sample`` builds it.

    ``values`` maps parameter names to control values; those equal to the strategy's default are left to
    it, as options not given on the command line are. A wrong combination raises ``ValueError`` with
    the one-line message ``workbench sample`` would print.
    """
    options: dict[str, Any] = {}
    for control in strategy_controls(name, inner):
        value = _cli_value(control, values.get(control.param, control.default))
        if value != _cli_value(control, control.default):  # as on the command line: only what differs is given
            options[control.param] = value
    return strategy_from_options(name, options, seed=int(seed), inner=inner if name == "stratified" else None)


def command_line(name: str, values: dict[str, Any], *, budget: int, seed: int, inner: Optional[str] = None) -> str:
    """The ``workbench sample`` command that stores the same run: what to paste into a terminal."""
    parts = ["workbench", "sample", "--strategy", name, "--budget", str(int(budget)), "--seed", str(int(seed))]
    if name == "stratified" and inner:
        parts += ["--inner", inner]
    for control in strategy_controls(name, inner):
        value = _cli_value(control, values.get(control.param, control.default))
        default = _cli_value(control, control.default)
        if value is None or value == default:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            parts += [control.option, shlex.quote(str(item))]
    return " ".join(parts)


__all__ = ["Control", "build_strategy", "command_line", "inner_names", "strategy_controls",
           "strategy_description", "strategy_names"]
