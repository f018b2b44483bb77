"""Structural conformance to a role of ``store.roles``: every member there, each method with the role's signature."""

from __future__ import annotations

import inspect


def members(role: type) -> list[str]:
    """The role's own methods and properties (not the Protocol machinery)."""
    return sorted(name for name, value in vars(role).items()
                  if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property)))


def assert_conforms(obj: object, role: type) -> None:
    """``obj`` is a ``role`` (``isinstance`` on the runtime-checkable protocol) and each of its methods takes exactly
    the parameters the role names, with the same kinds, defaults and annotations."""
    assert isinstance(obj, role), f"{type(obj).__name__} does not implement {role.__name__}"
    for name in members(role):
        declared = vars(role)[name]
        if isinstance(declared, property):
            assert hasattr(obj, name), f"{type(obj).__name__} has no {name}"
            continue
        got = inspect.signature(getattr(type(obj), name))
        want = inspect.signature(declared)
        assert got == want, f"{type(obj).__name__}.{name}{got} differs from {role.__name__}.{name}{want}"
