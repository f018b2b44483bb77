"""The sampling strategies as form controls, read from the same place ``workbench sample`` reads them.

Each strategy parameter (``get_params()``) is described by the command line option that sets it (its
type, choices and help text come from ``workbench sample``'s parser), shown with the strategy's default,
and turned back into a strategy by the CLI's own ``_strategy``: the app and the command line cannot
drift apart, and a form saves exactly the run ``workbench sample`` with the same options would.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Optional

from workbench import cli

ControlKind = Literal["choice", "multi", "int", "float", "text", "lines"]
#: parameters set outside the per-strategy controls (the seed) or not by a control at all
NOT_CONTROLS = ("random_state", "inner")


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


@lru_cache(maxsize=1)
def _sample_actions() -> dict[str, argparse.Action]:
    """``workbench sample``'s options by destination (= strategy parameter name)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return {a.dest: a for a in sub.choices["sample"]._actions if a.option_strings}  # noqa: SLF001


def strategy_names() -> list[str]:
    """What ``workbench sample --strategy`` offers, in its order."""
    return list(cli.SAMPLE_STRATEGIES)


def strategy_description(name: str) -> str:
    return cli.SAMPLE_STRATEGIES[name]


def inner_names() -> list[str]:
    """Strategies ``stratified`` may run inside each stratum (``--inner``)."""
    return list(_sample_actions()["inner"].choices)


def _default_params(name: str) -> dict[str, Any]:
    from sampler import STRATEGIES

    return STRATEGIES[name]().get_params(deep=False)


def _control(param: str, default: Any) -> Control:
    action = _sample_actions()[param]
    help_text = (action.help or "").replace("%%", "%")
    option = action.option_strings[-1]
    if param == "strata":
        return Control(param, option, "multi", tuple(default or ()), tuple(cli.STRATA_NAMES), help_text)
    if param == "custom_columns":
        return Control(param, option, "lines", "", (), help_text)
    if action.choices:
        return Control(param, option, "choice", default, tuple(action.choices), help_text)
    if action.type is int:
        return Control(param, option, "int", default, (), help_text)
    if action.type is float:
        return Control(param, option, "float", None if default is None else float(default), (), help_text)
    return Control(param, option, "text", _as_option_text(param, default), (), help_text)


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
    """The controls of strategy ``name`` (for ``stratified``: its own, then those of ``inner``).

    A parameter ``workbench sample`` has no option for cannot be set there either, so it gets no control
    (tests/sampler/test_cli.py checks that every parameter has an option).
    """
    actions = _sample_actions()
    own = _default_params(name)
    params = [(p, v) for p, v in sorted(own.items()) if p not in NOT_CONTROLS]
    if name == "stratified":
        params += [(p, v) for p, v in sorted(_default_params(inner or "uncertainty").items())
                   if p not in NOT_CONTROLS and p not in own]
    return [_control(p, v) for p, v in params if p in actions]


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
    """The strategy the form describes, built by the CLI's ``_strategy`` from the equivalent options.

    ``values`` maps parameter names to control values; those equal to the strategy's default are left to
    it, as options not given on the command line are. A wrong combination raises ``cli.UserError`` with
    the one-line message ``workbench sample`` would print.
    """
    options: dict[str, Any] = {}
    for control in strategy_controls(name, inner):
        value = _cli_value(control, values.get(control.param, control.default))
        if value != _cli_value(control, control.default):  # as on the command line: only what differs is given
            options[control.param] = value
    args = argparse.Namespace(strategy=name, seed=int(seed), inner=inner if name == "stratified" else None,
                              **options)
    return cli._strategy(args)  # noqa: SLF001 - the one mapping of options to parameters


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
