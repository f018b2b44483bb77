"""Labelled pools for the label-efficiency benchmark, built from ../shared/data (read in place, never copied).

* ``clips``: the real labelled clips (BirdNET test data shrike/wryneck, AviaNZ noise types and bittern,
  perch fish sounds), every 3 s window embedded by BirdNET, labelled with its clip's label.
* ``soundscape``: real calls (3 s windows where BirdNET found a species at >= 0.5 in the shared
  recordings) mixed into real background recordings of several sites (the scikit-maad 24-hour series,
  AviaNZ rain, insect and wind recordings) at controlled signal-to-noise ratios, with long-tailed
  (Zipf) class frequencies, a home site per class and background-only windows ("Noise"); strata =
  site|hour. The embedding is BirdNET's, as ingest stores it.
* ``images``: camera-trap (camtrapR, tunnel cameras) and ant/bee photos, embedded by the MobileNet v1
  embedding extractor in models/vision (LiteRT), labelled by species/class; strata = collection/station.
* ``digits``: scikit-learn's digits, an out-of-domain control.

Embeddings are cached in ``.cache/bench-label-efficiency`` (inside the clone), keyed by the builder's
parameters, so only the first run pays for BirdNET.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.pool import LabeledPool, from_arrays  # noqa: E402
from store.atomic import write_atomically  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".cache" / "bench-label-efficiency"
SR = 48000
WIN = 3 * SR


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cached(name: str, key: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{digest}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    arrays = build()
    write_atomically(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True)
    return arrays


def _load(path: Path) -> np.ndarray:
    """Mono float32 at 48 kHz, whole file (benchmark files are short)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    return mono if sr == SR else soxr.resample(mono, sr, SR).astype(np.float32)


_BIRDNET = None


def _embed_audio(windows: list[np.ndarray]) -> np.ndarray:
    """BirdNET embeddings (n x 1024) of 3 s windows, as ingest computes them."""
    global _BIRDNET
    from embeddings.birdnet import BirdNET

    if _BIRDNET is None:
        _BIRDNET = BirdNET().load()
    out = []
    for i in range(0, len(windows), 64):
        out.append(_BIRDNET.infer_batch(windows[i:i + 64])[1])
        _say(f"  BirdNET {min(i + 64, len(windows))}/{len(windows)} windows")
    return np.concatenate(out).astype(np.float32)


# ------------------------------------------------------------------------------------------ real clips
def _clip_label(folder: str, name: str) -> str:
    if folder == "birdnet_testdata_s1":
        return "Red-backed Shrike"
    if folder == "birdnet_testdata_s2":
        return "Eurasian Wryneck"
    if folder == "avianz_bittern":
        return "Australasian Bittern"
    if folder == "perch_fish_queries":
        return "fish: " + Path(name).stem.split("_")[0]
    prefix = re.match(r"[A-Za-z_]+?(?=_?k?\d)", Path(name).stem)
    kind = (prefix.group(0) if prefix else Path(name).stem).rstrip("_")
    return {"Rain": "rain", "Rain_kk": "rain", "Noise_Rain": "rain", "Crickets": "crickets", "Weta": "weta",
            "Rainncrickets": "rain and crickets", "Rainncrickets_k": "rain and crickets", "Wb": "wind",
            "Wb_Thunder": "thunder", "Wb_k": "wind"}.get(kind, kind)


def clips() -> LabeledPool:
    folder = SHARED / "audio" / "labeled_clips"
    files = sorted(p for p in folder.glob("*/*") if p.suffix.lower() in (".wav", ".flac", ".mp3"))

    def build() -> dict[str, np.ndarray]:
        windows, labels, strata = [], [], []
        for path in files:
            audio = _load(path)
            label = _clip_label(path.parent.name, path.name)
            for start in range(0, max(1, len(audio) - SR), WIN):  # full windows, and a last one >= 1 s
                w = np.zeros(WIN, dtype=np.float32)
                part = audio[start:start + WIN]
                w[:part.size] = part
                windows.append(w)
                labels.append(label)
                strata.append(path.parent.name.split("_")[0])
        _say(f"clips: {len(windows)} windows of {len(files)} labelled clips")
        return {"embeddings": _embed_audio(windows), "labels": np.array(labels), "strata": np.array(strata)}

    a = _cached("clips", {"files": [p.name for p in files], "v": 1}, build)
    return from_arrays(a["embeddings"], labels=a["labels"], strata=a["strata"], source="real labelled clips")


# ------------------------------------------------------------------------------------------ soundscapes
def _backgrounds() -> list[tuple[str, int, np.ndarray]]:
    """(site, hour, audio) of real background recordings."""
    out = []
    for path in sorted((SHARED / "audio" / "maad_24h_site_S4A03895").glob("*.wav")):
        out.append(("jura", int(path.stem.split("_")[2][:2]), _load(path)))
    sites = {"rain": ("Rain", "Noise_Rain"), "insects": ("Crickets", "Weta", "Rainncrickets"), "wind": ("Wb",)}
    for path in sorted((SHARED / "audio" / "labeled_clips" / "avianz_noise").glob("*.wav")):
        site = next((s for s, prefixes in sites.items() if path.stem.startswith(prefixes)), None)
        digits = re.search(r"(\d+)$", path.stem).group(1)
        hour = int(digits[:2]) if int(digits[:2]) < 24 else int(digits[0])
        if site:
            out.append((site, hour, _load(path)))
    return out


def _calls(min_confidence: float = 0.5) -> dict[str, list[np.ndarray]]:
    """3 s windows where BirdNET found one species at >= ``min_confidence``: class -> snippets."""
    rows = list(csv.DictReader(open(SHARED / "audio" / "birdnet_v2.4_detections.csv")))
    best: dict[tuple[str, float], tuple[float, str]] = {}
    for r in rows:
        key = (r["path"], float(r["start_s"]))
        conf = float(r["confidence"])
        if conf >= min_confidence and conf > best.get(key, (0.0, ""))[0]:
            best[key] = (conf, r["common_name"])
    audio: dict[str, np.ndarray] = {}
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for (path, start), (_, name) in sorted(best.items()):
        if path not in audio:
            audio[path] = _load(SHARED / path)
        snip = audio[path][int(start * SR):int(start * SR) + WIN]
        if snip.size == WIN and np.abs(snip).max() > 0:
            out[name].append(snip)
    return out


def soundscape(n_calls: int = 2400, n_background: int = 400, n_classes: int = 23, seed: int = 0) -> LabeledPool:
    key = {"n_calls": n_calls, "n_background": n_background, "n_classes": n_classes, "seed": seed, "v": 2}

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        bgs = _backgrounds()
        calls = _calls()
        classes = [name for name, _ in sorted(calls.items(), key=lambda kv: (-len(kv[1]), kv[0]))][:n_classes]
        weights = 1.0 / np.arange(1, len(classes) + 1) ** 1.1  # Zipf: a long tail of rare species
        counts = np.maximum(6, np.round(n_calls * weights / weights.sum())).astype(int)
        sites = sorted({s for s, _, _ in bgs})
        home = {c: sites[rng.integers(len(sites))] for c in classes}
        by_site = {s: [i for i, b in enumerate(bgs) if b[0] == s] for s in sites}
        windows, labels, strata = [], [], []

        def background(site: str) -> tuple[np.ndarray, str]:
            i = by_site[site][rng.integers(len(by_site[site]))]
            s, hour, audio = bgs[i]
            if audio.size <= WIN:
                audio = np.tile(audio, WIN // max(1, audio.size) + 2)
            start = rng.integers(0, audio.size - WIN)
            return audio[start:start + WIN].copy(), f"{s}|{hour:02d}"

        for c, n in zip(classes, counts):
            for _ in range(int(n)):
                site = home[c] if rng.random() < 0.6 else sites[rng.integers(len(sites))]
                bg, stratum = background(site)
                call = np.roll(calls[c][rng.integers(len(calls[c]))], int(rng.integers(-SR // 2, SR // 2)))
                snr_db = rng.uniform(-6.0, 9.0)
                p_bg, p_call = float(np.mean(bg ** 2)) + 1e-12, float(np.mean(call ** 2)) + 1e-12
                gain = np.sqrt(p_bg / p_call * 10 ** (snr_db / 10))
                windows.append((bg + gain * call).astype(np.float32))
                labels.append(c)
                strata.append(stratum)
        for _ in range(n_background):
            bg, stratum = background(sites[rng.integers(len(sites))])
            windows.append(bg.astype(np.float32))
            labels.append("Noise")
            strata.append(stratum)
        _say(f"soundscape: {len(windows)} windows, {len(classes)} species (+ Noise), counts "
             f"{counts.max()}..{counts.min()}, sites {sites}")
        return {"embeddings": _embed_audio(windows), "labels": np.array(labels), "strata": np.array(strata)}

    a = _cached("soundscape", key, build)
    return from_arrays(a["embeddings"], labels=a["labels"], strata=a["strata"], source="soundscape mixes")


def soundscape_multi(n_windows: int = 2000, n_classes: int = 23, seed: int = 0,
                     species_per_window: tuple[float, ...] = (0.16, 0.39, 0.30, 0.15)) -> LabeledPool:
    """Multi-species soundscapes: each window holds 0, 1, 2 or 3 real calls (shares ``species_per_window``) of
    distinct species drawn by long-tailed (Zipf) frequency, each at its own offset and SNR, over a real
    background; labels_multi (a background-only window has no label). Strata = site|hour."""
    key = {"n_windows": n_windows, "n_classes": n_classes, "seed": seed, "k": list(species_per_window), "v": 1}

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        bgs = _backgrounds()
        calls = _calls()
        classes = [name for name, _ in sorted(calls.items(), key=lambda kv: (-len(kv[1]), kv[0]))][:n_classes]
        weights = 1.0 / np.arange(1, len(classes) + 1) ** 1.1
        weights /= weights.sum()
        windows, truth, strata = [], np.zeros((n_windows, len(classes)), dtype=bool), []
        for i in range(n_windows):
            s, hour, audio = bgs[rng.integers(len(bgs))]
            if audio.size <= WIN:
                audio = np.tile(audio, WIN // max(1, audio.size) + 2)
            start = rng.integers(0, audio.size - WIN)
            mix = audio[start:start + WIN].astype(np.float64)
            p_bg = float(np.mean(mix ** 2)) + 1e-12
            k = int(rng.choice(len(species_per_window), p=species_per_window))
            for c in rng.choice(len(classes), size=k, replace=False, p=weights):
                call = np.roll(calls[classes[c]][rng.integers(len(calls[classes[c]]))],
                               int(rng.integers(-SR, SR)))
                snr_db = rng.uniform(-6.0, 9.0)
                mix += np.sqrt(p_bg / (float(np.mean(call ** 2)) + 1e-12) * 10 ** (snr_db / 10)) * call
                truth[i, c] = True
            windows.append(mix.astype(np.float32))
            strata.append(f"{s}|{hour:02d}")
        shares = np.bincount(truth.sum(axis=1), minlength=4) / n_windows
        _say(f"soundscape-multi: {n_windows} windows, {len(classes)} species; 0/1/2/3 species in "
             f"{'/'.join(f'{x:.0%}' for x in shares)} of windows; per class {truth.sum(0).max()}..{truth.sum(0).min()}")
        return {"embeddings": _embed_audio(windows), "labels_multi": truth, "classes": np.array(classes),
                "strata": np.array(strata)}

    a = _cached("soundscape-multi", key, build)
    return from_arrays(a["embeddings"], labels_multi=a["labels_multi"], classes=[str(c) for c in a["classes"]],
                       strata=a["strata"], source="multi-species soundscape mixes")


# ------------------------------------------------------------------------------------------ images
def _image_rows() -> list[tuple[Path, str, str]]:
    rows = []
    for r in csv.DictReader(open(SHARED / "images" / "camtrapR_borneo" / "labels.csv")):
        if r["label"] != "UNID":
            rows.append((SHARED / r["path"], r["species"].split(" (")[-1].rstrip(")"), f"camtrap|{r['station']}"))
    for r in csv.DictReader(open(SHARED / "images" / "hymenoptera_val" / "labels.csv")):
        rows.append((SHARED / r["path"], r["label"], "hymenoptera"))
    for r in csv.DictReader(open(SHARED / "images" / "smallmammal_tunnels_norway" / "labels.csv")):
        label = r["label_manual"] or r["label_automatic"]
        rows.append((SHARED / r["path"], f"tunnel: {label}", f"tunnel|{r['site']}"))
    return rows


def images() -> LabeledPool:
    from PIL import Image, ImageOps

    rows = _image_rows()
    model = SHARED / "models" / "vision" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"

    def build() -> dict[str, np.ndarray]:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(model), num_threads=2)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        scale, zero = out["quantization"]
        embs = []
        for n, (path, _, _) in enumerate(rows):
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                im = ImageOps.fit(im, (224, 224), Image.Resampling.BILINEAR)
                it.set_tensor(inp["index"], np.asarray(im, dtype=np.uint8)[None])
            it.invoke()
            embs.append((it.get_tensor(out["index"]).astype(np.float32).ravel() - zero) * scale)
            if (n + 1) % 50 == 0:
                _say(f"  MobileNet {n + 1}/{len(rows)} images")
        return {"embeddings": np.array(embs, dtype=np.float32), "labels": np.array([r[1] for r in rows]),
                "strata": np.array([r[2] for r in rows])}

    a = _cached("images", {"files": [str(r[0].name) for r in rows], "model": model.name, "v": 1}, build)
    return from_arrays(a["embeddings"], labels=a["labels"], strata=a["strata"], source="labelled images")


def digits() -> LabeledPool:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    strata = np.array([f"block {i % 4}" for i in range(len(y))])
    return from_arrays(x / 16.0, labels=[str(v) for v in y], strata=strata, source="scikit-learn digits")


SETS: dict[str, Callable[[], LabeledPool]] = {"clips": clips, "soundscape": soundscape,
                                              "soundscape-multi": soundscape_multi, "images": images,
                                              "digits": digits}


def describe(pool: LabeledPool) -> str:
    counts = Counter(label for row in pool.label_lists() for label in row)
    return (f"{len(pool)} clips, {pool.embeddings.shape[1]}-d, {len(pool.classes)} classes "
            f"(largest {max(counts.values())}, smallest {min(counts.values())}), {len(set(pool.strata))} strata")
