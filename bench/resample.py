"""Which resampler should ingest use for audio not at 48 kHz? Macro recall of BirdNET on labelled recordings at
16, 22.05, 32 and 44.1 kHz, ingested with ``--resample analyzer`` (BirdNET-Analyzer's librosa kaiser_fast, the
default) and ``--resample soxr-hq``, same files, same model, same process.

    .venv/bin/python bench/resample.py

Files (read in place from ../shared/data): the 48 kHz labelled clips (12 Red-backed Shrike, 12 Eurasian
Wryneck) and the Tawny Owl recording, brought to each rate with soxr's very-high-quality filter (what a
recorder set to that rate would hand over, near enough), plus the recordings that are natively at 22.05 and
44.1 kHz (American Robin, Lesser Goldfinch, three Golden-winged Warblers, the Great Plains Toad). A file counts
as found when its species is the top label of at least one of its 3 s windows; recall per species, macro over
species. Printed per rate: macro recall of each resampler, how many windows have the file's species as their
top label under each (finer than the file-level recall, which these clear recordings saturate), the files
where they differ, and the share of windows whose top label differs. The last line is ``resample macro recall analyzer X vs soxr-hq Y``
(all rates pooled).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data")) / "audio"
SHRIKE, WRYNECK = "Lanius collurio_Red-backed Shrike", "Jynx torquilla_Eurasian Wryneck"
AT_48K = [(p, SHRIKE) for p in sorted((DATA / "labeled_clips" / "birdnet_testdata_s1").glob("*.wav"))] + \
         [(p, WRYNECK) for p in sorted((DATA / "labeled_clips" / "birdnet_testdata_s2").glob("*.wav"))] + \
         [(DATA / "recordings" / "birdnetgo_tawnyowl.wav", "Strix aluco_Tawny Owl")]
NATIVE = [(DATA / "recordings" / "birdnetgo_amerob.wav", "Turdus migratorius_American Robin"),
          (DATA / "recordings" / "birdnetgo_lesgol.wav", "Spinus psaltria_Lesser Goldfinch"),
          (DATA / "recordings" / "opensoundscape_great_plains_toad.wav", "Anaxyrus cognatus_Great Plains Toad")] + \
         [(p, "Vermivora chrysoptera_Golden-winged Warbler") for p in sorted((DATA / "annotated").glob("*GWWA*.mp3"))]
RATES = (16000, 22050, 32000, 44100)
RESAMPLERS = ("analyzer", "soxr-hq")


def _found(store, files: dict[str, str]) -> tuple[dict[str, bool], dict[tuple[str, float], str]]:
    """Per file: is its species the top label of a window; and the top label of each (file, start) window."""
    pool = store.pool()
    infos = store.clips(pool.clip_id)
    hit: dict[str, bool] = {f: False for f in files}
    tops = {}
    for info, top in zip(infos, pool.top_label):
        key = str(Path(info.path).resolve())
        tops[(key, float(info.start_s))] = str(top)
        if key in files and str(top) == files[key]:
            hit[key] = True
    return hit, tops


def _macro(hit: dict[str, bool], files: dict[str, str]) -> float:
    per = defaultdict(list)
    for f, ok in hit.items():
        per[files[f]].append(ok)
    return float(np.mean([np.mean(v) for v in per.values()]))


def main() -> int:
    import soxr

    from embeddings.birdnet import BirdNET
    from embeddings.ingest import ingest
    from store import Store

    missing = [p for p, _ in AT_48K + NATIVE if not p.exists()]
    if missing:
        print(f"needs the shared test data (missing {missing[0]})")
        return 1
    model = BirdNET()
    tmp = Path(tempfile.mkdtemp(prefix="bench-resample-"))
    pooled = {r: [] for r in RESAMPLERS}
    for rate in (*RATES, "native"):
        folder = tmp / f"audio-{rate}"
        folder.mkdir()
        files: dict[str, str] = {}
        if rate == "native":
            for p, species in NATIVE:
                files[str(p.resolve())] = species
        else:
            for p, species in AT_48K:
                x, sr = sf.read(p, dtype="float32", always_2d=True)
                out = folder / f"{p.parent.name}-{p.stem}.wav"
                sf.write(out, soxr.resample(x, sr, rate, quality="VHQ"), rate, subtype="PCM_16")
                files[str(out.resolve())] = species
        results = {}
        for resampler in RESAMPLERS:
            store = Store.open(tmp / f"ws-{rate}-{resampler}")
            ingest(sorted(files), store, model=model, resample=resampler)
            results[resampler] = _found(store, files)
            store.close()
        (ha, ta), (hs, ts) = results["analyzer"], results["soxr-hq"]
        differ = [Path(f).name for f in files if ha[f] != hs[f]]
        common = set(ta) & set(ts)
        changed = sum(ta[k] != ts[k] for k in common) / max(1, len(common))
        on_top = {r: sum(t[k] == files[k[0]] for k in common) for r, t in (("analyzer", ta), ("soxr-hq", ts))}
        ma, ms = _macro(ha, files), _macro(hs, files)
        pooled["analyzer"] += list(ha.items())
        pooled["soxr-hq"] += list(hs.items())
        label = "native 22.05/44.1 kHz" if rate == "native" else f"{rate / 1000:g} kHz"
        print(f"{label:>22}: {len(files)} files, {len(common)} windows; macro recall analyzer {ma:.3f}, soxr-hq "
              f"{ms:.3f}; windows with the file's species on top {on_top['analyzer']} vs {on_top['soxr-hq']}; top label "
              f"differs on {changed:.1%} of windows; files found by one only: "
              f"{', '.join(differ) or 'none'}", flush=True)
    species = {**{str(p.resolve()): s for p, s in NATIVE}}
    macro = {}
    for r, items in pooled.items():
        per = defaultdict(list)
        for f, ok in items:
            per[species.get(f) or next(s for p, s in AT_48K if Path(f).stem.endswith(p.stem))].append(ok)
        macro[r] = float(np.mean([np.mean(v) for v in per.values()]))
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"resample macro recall analyzer {macro['analyzer']:.3f} vs soxr-hq {macro['soxr-hq']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
