"""Demo sample recordings: pinned, checksummed, cached; generated when offline."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import shared_path
from workbench import samples


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP mirror laid out as OWNER/REPO/COMMIT/PATH, serving the shared copies of the samples."""
    audio = shared_path("audio")
    sources = {
        "pennsylvania/opensoundscape_birds_10s.wav": audio / "recordings/opensoundscape_birds_10s.wav",
        "jura-france/S4A03895_20190522_000000.wav": audio / "maad_24h_site_S4A03895/S4A03895_20190522_000000.wav",
    }
    root = tmp_path / "mirror"
    chosen = [s for s in samples.SAMPLES if s.dest in sources]
    for s in chosen:
        target = root / s.repo / s.commit / s.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sources[s.dest].read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", chosen, root
    server.shutdown()


def test_pinned_checksums_match_the_shared_copies():
    audio = shared_path("audio")
    s = next(x for x in samples.SAMPLES if x.dest.endswith("S4A03895_20190522_230000.wav"))
    assert samples.sha256_of(audio / "maad_24h_site_S4A03895" / "S4A03895_20190522_230000.wav") == s.sha256
    assert all(len(x.commit) == 40 for x in samples.SAMPLES)
    assert all(x.licence in {"MIT", "BSD-3-Clause", "Apache-2.0"} for x in samples.SAMPLES)


def test_fetch_downloads_verifies_and_caches(mirror, tmp_path):
    base, chosen, root = mirror
    dest = tmp_path / "cache"
    paths = [samples.fetch_sample(s, dest, base) for s in chosen]
    assert all(p.exists() and samples.sha256_of(p) == s.sha256 for p, s in zip(paths, chosen))
    # cached: served from disk even when the mirror is gone
    for s in chosen:
        (root / s.repo / s.commit / s.path).unlink()
    assert [samples.fetch_sample(s, dest, base) for s in chosen] == paths


def test_a_tampered_download_is_rejected_and_not_cached(mirror, tmp_path):
    base, chosen, root = mirror
    s = chosen[0]
    (root / s.repo / s.commit / s.path).write_bytes(b"RIFF tampered")
    with pytest.raises(samples.ChecksumError, match="does not match"):
        samples.fetch_sample(s, tmp_path / "cache", base)
    assert not (tmp_path / "cache" / s.dest).exists()


def test_offline_fetch_returns_nothing_quickly(tmp_path):
    got = samples.fetch_samples(tmp_path / "cache", base="http://127.0.0.1:9")  # nothing listens on port 9
    assert got == []


def test_generated_audio_is_recorder_like(tmp_path):
    paths = samples.generate_field_audio(tmp_path, sites=2, hours=(5, 22), seconds=6.0)
    assert len(paths) == 4
    assert {p.parent.name for p in paths} == {"site-A", "site-B"}
    assert all(p.name.startswith("SMA1000") and "_20240501_" in p.name for p in paths)
    data, sr = sf.read(paths[0])
    assert sr == 32000 and len(data) == 6 * 32000
    assert np.abs(data).max() > 0.05  # calls, not silence
    again = samples.generate_field_audio(tmp_path, sites=2, hours=(5, 22), seconds=6.0)
    assert again == paths  # reused, not rewritten
