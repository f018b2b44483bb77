"""Sample recordings for the demo: real, permissively licensed, pinned, checked; or generated.

Each sample is fetched once from a URL pinned to a commit, checked against its sha256 and cached in
the workspace. With no network (or a checksum that does not match), the demo falls back to
generated field-like audio, so it never fails for lack of data. WORKBENCH_SAMPLES_MIRROR replaces
``https://raw.githubusercontent.com`` (a mirror laid out as OWNER/REPO/COMMIT/PATH).
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf

from store.atomic import atomic_path
from store.sources import file_sha256 as sha256_of

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://raw.githubusercontent.com"
OPENSOUNDSCAPE = ("kitzeslab/opensoundscape", "8b582152c91df6f1d4387b23e1ca849be70f4cea", "MIT")
MAAD = ("scikit-maad/scikit-maad", "a726add0f86b70a7c59f2a1b4ba5978f7ca8fdf1", "BSD-3-Clause")
PERCH = ("google-research/perch", "b216270c0220c47318ba25b4b11a5c80951315cd", "Apache-2.0")


@dataclass(frozen=True)
class Sample:
    """One pinned public recording: where it is cached (site folder / file name) and where it comes from."""

    dest: str
    repo: str
    commit: str
    path: str
    sha256: str
    licence: str

    def url(self, base: str = DEFAULT_BASE) -> str:
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


def _maad_hour(hour: int, sha: str) -> Sample:
    name = f"S4A03895_20190522_{hour:02d}0000.wav"
    return Sample(f"jura-france/{name}", MAAD[0], MAAD[1], f"data/indices/{name}", sha, MAAD[2])


_MAAD_SHA = """
7e3c77c51dbecdcde6f97b5231be8165bb78a39ea659311bd348b77952bdb165 0928827de7bf617b18d0635ba6f648f33669ffd2dee9095759e9f31c2b412a84
8f299ab0e97ac88967fcb7922eb05f6e0c8b8b51ba6ea8bd60b08c8ee800df34 992a0fc36279f704537cce62907e7232a8d5ce02248c0bd74d69b515c6e44f21
5b8cbae054d8c71fada2a88e63589210cb2788e5938b98cf7f2c5167d903b807 5f537f4cbb4e3d56524ec8840085e59127cee859160d5ac856c8a1eddb58c8b1
e1f81510633fea1dc38dec862eaed9565065a84f89fb6424829df6f8b3f706aa 19725f1a41c240492d5cd2a57c3518bca07e8dd3ed9f1350f95d44958b85bb3b
5ddc45b0df1641c593b10e41678d5c192a60ffcec5be203b9c3f6953a9e517fe 27e72115f1aa8b2f02a5b2572e54a1c48f6f07ab2fc35e068530e2f970c053f3
5260a91244c9c76d7f6105322d5ef1c59cb721435a553e88a9cf0cd13c803ce8 f1b04d3c365c5143e8f254d15e72e97015b15acb755a004a58bd416697bc3e04
04db91b1d7defba7170586fd0bfc2c62ffba8581328e11060864173dbd67e336 084196978ccbf790ac5c0a70861c252a2637acc43eea2b5729405f964069ba3c
201691cc228c094bcf94e6a9192d77a53cf5fe41f2b382bd952493ea89bea15f 69f74021145b1d985a5a4526932d8328c4c40e018344ff54095339a77f3f0eed
2200b632f99c2ce6e0ec32f0bcb432a2510db89b970882358553c30de3bb2793 6dee564e8aa8e6dabe627c6d01b3a726934b79efc9e1c986d606b68e1dbac166
255b605abdb81a189e9be4f6991f16e4e8500af3cba7157475b03770ad56b268 5a268e1a6925d3d0187e55b971a652f01c9c599078e178dca9350804fde21d78
fc2296bcabd95a277dfba26c30f22ffad232b625140013f3cb12719823ce2140 b455d08f2081394e65b1e4ba0ae886041320e933472c00b4b969d5c7c0677f0f
7b4e0bc8ae4920fbe061542ff9b8a38d613145bfc8f4f7b1ddce96bf2db9635b 0d36d2bea5254da158cb9668d2e236884786ebe2ffe096c089d9d1c2a45e8cbf
""".split()

SAMPLES: tuple[Sample, ...] = (
    Sample("pennsylvania/opensoundscape_1min.wav", *OPENSOUNDSCAPE[:2], "tests/audio/1min.wav",
           "8f3415b8059397145d11fda667241c18cba618eed72bc9d77361ae1aaacbc9c8", OPENSOUNDSCAPE[2]),
    Sample("pennsylvania/opensoundscape_birds_10s.wav", *OPENSOUNDSCAPE[:2], "opensoundscape/sample_data/birds_10s.wav",
           "90e70f9ceb33392a948c10465db50fbf4bf252ae412c2e9f18d0bf9a1e7f31a7", OPENSOUNDSCAPE[2]),
    Sample("pennsylvania/opensoundscape_rugr_drum.wav", *OPENSOUNDSCAPE[:2], "tests/audio/rugr_drum.wav",
           "68a91c2d2f7374c88dc79bfc37b57e3c1b564b8b21bc264a9a57d41479b1cb99", OPENSOUNDSCAPE[2]),
    Sample("pennsylvania/opensoundscape_audiomoth.wav", *OPENSOUNDSCAPE[:2], "tests/audio/metadata.wav",
           "4c6e6956d7dc66538ba4f178b3d1254380f5fc2f472bd4f848074314a0f957f9", OPENSOUNDSCAPE[2]),
    Sample("great-plains/opensoundscape_great_plains_toad.wav", *OPENSOUNDSCAPE[:2], "tests/audio/great_plains_toad.wav",
           "e160cce8fdc0ef94d76d32b4ba1ee03e5b719deadb824f9f8792264f1083ce8d", OPENSOUNDSCAPE[2]),
    Sample("valle-del-cauca/maad_spinetail.wav", MAAD[0], MAAD[1], "data/spinetail.wav",
           "96b147656c0c1534f151d7c7dc5776a74320e26391e155f618463f5f9d8beb99", MAAD[2]),
    Sample("perch/perch_21100_36_48.wav", PERCH[0], PERCH[1], "chirp/tests/testdata/21100_36_48.wav",
           "28d4a732629d696de9c297ea02e79e74babcd6c6acf498f37633b1ec75240391", PERCH[2]),
) + tuple(_maad_hour(h, sha) for h, sha in enumerate(_MAAD_SHA))


class ChecksumError(ValueError):
    pass


def fetch_sample(sample: Sample, dest_root: Path, base: str | None = None, timeout: float = 15.0) -> Path:
    """Download one sample into ``dest_root`` (cached), verifying its sha256; raise on any failure."""
    dest = dest_root / sample.dest
    if dest.exists() and sha256_of(dest) == sample.sha256:
        return dest
    base = base or os.environ.get("WORKBENCH_SAMPLES_MIRROR") or DEFAULT_BASE
    with atomic_path(dest) as tmp:  # kept only when it holds the pinned bytes
        with urllib.request.urlopen(sample.url(base), timeout=timeout) as resp, open(tmp, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
        got = sha256_of(tmp)
        if got != sample.sha256:
            raise ChecksumError(f"{sample.url(base)}: sha256 {got} does not match the pinned {sample.sha256}")
    return dest


def fetch_samples(dest_root: Path, base: str | None = None,
                  progress: Optional[Callable[[str], None]] = None) -> list[Path]:
    """Fetch every pinned sample; stop at the first network failure (offline) and return what is cached."""
    got: list[Path] = []
    for sample in SAMPLES:
        try:
            got.append(fetch_sample(sample, dest_root, base))
            if progress:
                progress(f"sample ok: {sample.dest}")
        except ChecksumError as e:
            log.warning("%s", e)
            if progress:
                progress(f"sample rejected (checksum): {sample.dest}")
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            if progress:
                progress(f"sample download failed ({e}); continuing offline")
            break
    return got


def generate_field_audio(dest_root: Path, *, sites: int = 3, hours: tuple[int, ...] = (5, 6, 12, 21),
                         seconds: float = 30.0, sample_rate: int = 32000, seed: int = 0) -> list[Path]:
    """Write synthetic recorder files (Song Meter names, one folder per site) when no real audio is at hand.

    Each file mixes pink-ish background noise with repeated tonal calls (frequency sweeps and
    trills) whose pattern differs by site and hour, so windows differ in content and uncertainty.
    """
    rng = np.random.default_rng(seed)
    paths = []
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    start = datetime(2024, 5, 1)
    for s in range(sites):
        device = f"SMA{10000 + s:05d}"
        folder = dest_root / "generated" / f"site-{chr(ord('A') + s)}"
        folder.mkdir(parents=True, exist_ok=True)
        for h in hours:
            stamp = (start + timedelta(hours=h)).strftime("%Y%m%d_%H%M%S")
            path = folder / f"{device}_{stamp}.wav"
            if path.exists():
                paths.append(path)
                continue
            noise = np.cumsum(rng.normal(0, 1, n)).astype(np.float64)
            noise = (noise - np.convolve(noise, np.ones(400) / 400, mode="same")) * 0.01
            signal = noise
            base_f = 1500 + 700 * s + 40 * h
            for onset in np.arange(rng.uniform(0, 2), seconds - 1, rng.uniform(1.5, 4.0)):
                dur = rng.uniform(0.15, 0.6)
                mask = (t >= onset) & (t < onset + dur)
                tt = t[mask] - onset
                sweep = base_f * (1 + 0.8 * tt / dur) if (h + s) % 2 else base_f + 300 * np.sin(2 * np.pi * 25 * tt)
                phase = 2 * np.pi * np.cumsum(sweep) / sample_rate
                signal[mask] += 0.3 * np.sin(phase) * np.hanning(mask.sum())
            sf.write(path, (signal / max(1.0, np.abs(signal).max())).astype(np.float32), sample_rate,
                     subtype="PCM_16")
            paths.append(path)
    return paths
