"""Push throughput: ``LabelStudioClient.push`` of N clips (cut with context, spectrogram drawn, pre-annotation
built and checked, tasks imported, recorded in the store) against Label Studio's own SDK importing the same N
prepared task payloads (the floor: what the server takes for the import alone), same server, same process.

    .venv/bin/python bench/push.py [--clips 1000] [--recordings 50] [--url URL --token TOKEN]

Without --url a throwaway Label Studio is started on 127.0.0.1 (a cold start of its database: about 30 s,
not timed). The clips are 3 s windows of generated 22.05 kHz recordings (a tone in noise, distinct per
recording), scored by a stand-in model over BirdNET's real 6,522 labels, so each task carries its own
suggestions and the project the full species search. Printed: seconds and clips per second of each side,
the time of ours split into preparing clips (threads), building payloads, and the server's part, a second
push of the same clips to a new project (clips and spectrograms are reused, not made again), and the load.
The last line is ``push 1000 clips: X s``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def _recordings(store, folder: Path, n_clips: int, n_recordings: int, labels: list[str]):
    """``n_recordings`` files of 3 s windows, ``n_clips`` windows in all, scored by a stand-in model."""
    from store import Recording, SamplingRun, Selection
    from store.sources import file_sha256

    rng = np.random.default_rng(0)
    sr, per = 22050, int(np.ceil(n_clips / n_recordings))
    mv = store.ensure_model_version("bench-model", "embedding", "bench-model", 8, labels)
    ids: list[int] = []
    for r in range(n_recordings):
        n = min(per, n_clips - len(ids))
        if n <= 0:
            break
        t = np.arange(int(3.0 * n * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * (900 + 40 * r) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"site{r % 5}" / f"rec{r:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), sr)
        st = path.stat()
        rec = store.add_recording(Recording(path=str(path), content_hash=file_sha256(path), file_size=st.st_size,
                                            file_mtime_ns=st.st_mtime_ns, site=f"site{r % 5}", device="AM",
                                            start_time=datetime(2024, 5, 1, 5, 0), sample_rate=sr, channels=1,
                                            duration_s=3.0 * n, status="done"))
        probs = rng.dirichlet(np.full(len(labels), 0.05), size=n).astype(np.float32)
        spans = [(3.0 * i, 3.0 * i + 3.0) for i in range(n)]
        ids += [int(i) for i in store.add_clip_batch(rec.id, spans, mv, probs,
                                                     rng.standard_normal((n, 8)).astype(np.float32))]
    run = store.add_sampling_run(SamplingRun(strategy="bench", params={}, seed=0, budget=len(ids),
                                             model_version_id=mv.id),
                                 [Selection(clip_id=c, rank=i + 1, score=1.0, reason="bench") for i, c in enumerate(ids)])
    return run.id


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--recordings", type=int, default=50)
    ap.add_argument("--url", help="a running Label Studio (default: start one)")
    ap.add_argument("--token", help="its API token")
    args = ap.parse_args(argv)

    from annotation.client import LabelStudioClient
    from annotation.labelset import DEFAULT_EXTRA
    from annotation.server import LocalLabelStudio
    from annotation.settings import LabelStudioSettings
    from annotation.vocabulary import Vocabulary
    from embeddings.birdnet import BirdNET
    from store import Store

    root = Path(tempfile.mkdtemp(prefix="bench-push-"))
    media = root / "media"
    media.mkdir()
    server = None
    if args.url:
        settings = LabelStudioSettings(url=args.url.rstrip("/"), token=args.token or "", username="", password="")
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = LabelStudioSettings(url=f"http://127.0.0.1:{port}", token=secrets.token_hex(20),
                                       username="bench@workbench.local", password=secrets.token_urlsafe(12))
        server = LocalLabelStudio(root / "labelstudio", media, settings, port=port, log_file=root / "labelstudio.log")
        print(f"starting Label Studio on {settings.url} (cold start, untimed) ...", flush=True)
        server.start(timeout=300)
    try:
        labels = BirdNET().labels
        store = Store.open(media / "ws", embedding_dtype="float16")
        run_id = _recordings(store, media / "audio", args.clips, args.recordings, labels)
        client = LabelStudioClient(settings, document_root=media)
        vocabulary = Vocabulary.of(labels, DEFAULT_EXTRA)
        label_set = store.add_label_set("bench", [labels[0], *DEFAULT_EXTRA])
        clips = media / "clips"
        import annotation.spectrogram  # noqa: F401 - its imports (scipy.signal) are not push's work

        def project(name: str) -> int:
            return client.ensure_project(label_set, title=f"bench {name} {uuid.uuid4().hex[:6]}", clips_dir=clips,
                                         vocabulary=vocabulary)

        # ours, cold: nothing cut or drawn yet. The task payloads it sends are kept for the baseline.
        sent: list[dict] = []
        real_import = client.sdk.projects.import_tasks

        def keep(*a, request, **kw):
            sent.extend(request)
            return real_import(*a, request=request, **kw)

        client.sdk.projects.import_tasks = keep
        pid = project("ours")
        ids = [s.clip_id for s in store.selections(run_id)]
        timings: dict[str, float] = {}
        real_build = LabelStudioClient._build_tasks

        def timed_build(*a, **kw):
            t = time.perf_counter()
            out = real_build(*a, **kw)
            timings["prepare"] = time.perf_counter() - t
            return out

        LabelStudioClient._build_tasks = staticmethod(timed_build)
        profile = None
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        t0 = time.perf_counter()
        report = client.push(store, clips, pid, run_id=run_id)
        ours = time.perf_counter() - t0
        if profile is not None:
            import pstats

            profile.disable()
            pstats.Stats(profile).sort_stats(os.environ["BENCH_PROFILE"]).print_stats(25)
        LabelStudioClient._build_tasks = staticmethod(real_build)
        client.sdk.projects.import_tasks = real_import
        assert report.created == len(ids) and not report.failed, (report.created, report.failed[:3])

        # baseline: the SDK importing exactly those payloads into a fresh project
        pid_raw = project("raw")
        t0 = time.perf_counter()
        for start in range(0, len(sent), 100):
            client.sdk.projects.import_tasks(id=pid_raw, request=sent[start:start + 100], return_task_ids=True)
        raw = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = client.push(store, clips, project("again"), run_id=run_id)
        reuse = time.perf_counter() - t0
        assert again.created == len(ids)

        n = len(ids)
        print(f"clips: {n} windows of {args.recordings} recordings; {os.cpu_count()} cores, load "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"raw SDK import of {n} prepared tasks: {raw:.2f} s ({n / raw:.0f} tasks/s)")
        print(f"ours, cold (cut + spectrogram + payload + import + record): {ours:.2f} s ({n / ours:.0f} clips/s), "
              f"{ours / raw:.1f} x the raw import; preparing clips and payloads {timings['prepare']:.2f} s, the "
              f"rest (import, reconcile, record) {ours - timings['prepare']:.2f} s")
        print(f"ours, same clips to a new project (clips and spectrograms reused): {reuse:.2f} s")
        print(f"push {n} clips: {ours:.1f} s")
        return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
