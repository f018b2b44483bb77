"""Image ingest throughput: the workbench's image ingest (``ingest_images`` into a fresh store: hashing,
metadata, decoding on a thread pool overlapping two interpreters, store writes) and ``embed_images`` (the
model part alone) versus a plain loop (Pillow loads each image, the same model runs it, one image at a
time), same files, same process.

    .venv/bin/python bench/vision_ingest.py [DIR ...] [--model NAME] [--rounds N] [--limit N]

DIR defaults to every image under the shared test data (../shared/data/images, or
$WORKBENCH_SHARED_DATA/images): camera-trap frames (1280 x 720 and larger), moth-trap frames and crops,
insect photos (about 560 files). Both sides get the probabilities AND the embedding of every image.

Both sides are warmed up first (untimed: each interpreter's first invoke packs the weights), then run
in alternating rounds; each keeps its best round, so a burst of load from other processes on this
shared machine does not decide the ratio. Printed: images per second of each side, the per-image cost
split of the plain loop (decode / preprocess / invoke) and of the fast path's reduced-scale decoding,
the fast path without reduced-scale JPEG decoding (what two threads alone give), how close the fast
path's embeddings are to the plain loop's, and the load average. The last line is
``vision ingest speed ratio: X`` (the workbench's ingest over the plain loop, images per second).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from embeddings.vision import (DEFAULT_MODEL, REGISTRY, VisionModel, embed_images, image_files,  # noqa: E402
                               registered_model)
from embeddings.image_files import read_image  # noqa: E402


def shared_data() -> Path:
    return Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def plain_loop(paths: list[Path], model: VisionModel, split: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Open each file with Pillow, convert to RGB, preprocess, invoke: one image at a time, one thread."""
    embs, probs = [], []
    t_decode = t_pre = t_invoke = 0.0
    for path in paths:
        t0 = time.perf_counter()
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError):
            continue
        t1 = time.perf_counter()
        x = model.preprocess(image)
        t2 = time.perf_counter()
        p, e = model.infer_batch([x])
        t3 = time.perf_counter()
        t_decode, t_pre, t_invoke = t_decode + t1 - t0, t_pre + t2 - t1, t_invoke + t3 - t2
        probs.append(p[0])
        embs.append(e[0])
    if split is not None:
        split.update(decode=t_decode, preprocess=t_pre, invoke=t_invoke, n=len(embs))
    return np.array(probs), np.array(embs)


def fast_path(paths: list[Path], model: VisionModel, fast_jpeg: bool = True) -> tuple[np.ndarray, np.ndarray]:
    probs, embs = [], []
    for r in embed_images(paths, model, workers=2, fast_jpeg=fast_jpeg):
        if r.ok:
            probs.append(r.probabilities)
            embs.append(r.embedding)
    return np.array(probs), np.array(embs)


def store_ingest(paths: list[Path], model: VisionModel) -> tuple[np.ndarray, np.ndarray]:
    """What `workbench ingest` does with images, into a fresh store (hashes, metadata, regions, vectors)."""
    import tempfile

    from embeddings.image_ingest import ingest_images
    from store import Store

    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        store = Store.open(tmp)
        ingest_images(paths, store, model)
        pool = store.pool(store.model_version(model.name))
        embs = store.embeddings(model.name).take(pool.clip_id)
        store.close()
    return np.zeros((len(embs), 0)), embs


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, help="image folders (default: the shared test images)")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY))
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="folder with the registered model files (default: the shared test data's)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the best counts")
    parser.add_argument("--limit", type=int, default=0, help="use at most N images (0: all)")
    args = parser.parse_args()

    dirs = args.dirs or [shared_data() / "images"]
    paths = [p for d in dirs for p in image_files(d)]
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        sys.exit(f"no images under {', '.join(map(str, dirs))}")
    model = registered_model(args.model, args.models_dir or shared_data() / "models" / "vision")
    print(f"{len(paths)} images from {', '.join(map(str, dirs))}; model {model.name} "
          f"({model.input_size[0]}x{model.input_size[1]}, crop={model.spec.crop}); {os.cpu_count()} cores; {load()}")

    t0 = time.perf_counter()
    model.warm_up(interpreters=2)
    plain_loop(paths[:8], model)
    print(f"warm-up (untimed) {time.perf_counter() - t0:.2f} s: two interpreters built and run once")

    best = {"plain": float("inf"), "fast": float("inf"), "fast_full_decode": float("inf"), "ingest": float("inf")}
    split: dict = {}
    results = {}
    for r in range(max(1, args.rounds)):
        wall, results["plain"] = timed(plain_loop, paths, model, split if r == 0 else None)
        best["plain"] = min(best["plain"], wall)
        print(f"  round {r + 1}: plain loop {wall:.2f} s; {load()}")
        wall, results["fast"] = timed(fast_path, paths, model)
        best["fast"] = min(best["fast"], wall)
        print(f"  round {r + 1}: embed_images {wall:.2f} s; {load()}")
        wall, results["fast_full_decode"] = timed(fast_path, paths, model, False)
        best["fast_full_decode"] = min(best["fast_full_decode"], wall)
        print(f"  round {r + 1}: embed_images (fast_jpeg=False) {wall:.2f} s; {load()}")
        wall, results["ingest"] = timed(store_ingest, paths, model)
        best["ingest"] = min(best["ingest"], wall)
        print(f"  round {r + 1}: ingest_images into a new store {wall:.2f} s; {load()}")

    n = split["n"]
    t_reduced = 0.0
    for path in paths:
        t1 = time.perf_counter()
        try:
            read_image(path, min_size=model.pixels_needed)
        except ValueError:
            pass
        t_reduced += time.perf_counter() - t1
    print(f"per-image cost, plain loop (ms): decode {1e3 * split['decode'] / n:.2f}, preprocess "
          f"{1e3 * split['preprocess'] / n:.2f}, invoke {1e3 * split['invoke'] / n:.2f}")
    print(f"per-image cost, fast path's reduced-scale decode on one thread (ms): {1e3 * t_reduced / len(paths):.2f} "
          f"(read + decode + EXIF + RGB)")

    a, b = results["plain"][1], results["fast"][1]
    if a.shape == b.shape and len(a):
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        same_top1 = float(np.mean(results["plain"][0].argmax(1) == results["fast"][0].argmax(1)))
        print(f"fast path vs plain loop: embedding cosine mean {cos.mean():.4f}, min {cos.min():.4f}; "
              f"same top-1 class {100 * same_top1:.1f}%")
    for label, text in (("plain", "plain loop (Pillow load + 1 interpreter)"),
                        ("fast_full_decode", "embed_images, full-size decoding (2 threads only)"),
                        ("fast", "embed_images (2 threads, reduced-scale JPEG decoding)"),
                        ("ingest", "workbench ingest (ingest_images: + hashing, metadata, store writes)")):
        print(f"{text}: {len(paths) / best[label]:.1f} images/s ({best[label]:.2f} s, best of {max(1, args.rounds)})")
    print(f"two threads alone: {best['plain'] / best['fast_full_decode']:.2f}x")
    print(f"model path alone (embed_images) vs plain loop: {best['plain'] / best['fast']:.2f}x")
    print(f"vision ingest speed ratio: {best['plain'] / best['ingest']:.2f}")


if __name__ == "__main__":
    main()
