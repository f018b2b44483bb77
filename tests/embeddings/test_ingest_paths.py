"""The ingest service: paths sorted into audio and images, each part's report, folders it could not use."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embeddings.ingest_paths import IngestSettings, ingest_paths, vision_model
from store import Store
from store.schema import Modality
from tests.conftest import shared_path
from tests.embeddings.audio_files import write_tone

TINY = "mobilenet-v1-0.25-128-imagenet"


def test_audio_and_images_under_one_folder_are_both_ingested_with_one_progress(tmp_path):
    site = tmp_path / "site"
    write_tone(site / "dawn.wav", 4.0)
    (site / "cam").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(site / "cam" / "a.jpg")
    empty = tmp_path / "nothing"
    empty.mkdir()
    seen: list[Modality] = []
    store = Store.open(tmp_path / "ws")
    try:
        result = ingest_paths([site, empty], store,
                              IngestSettings(vision_model=TINY, model_dir=shared_path("models", "vision")),
                              progress=lambda part, *_: seen.append(part))
        assert [kind for kind, _ in result.parts] == [Modality.AUDIO, Modality.IMAGE]
        audio, images = (r for _, r in result.parts)
        assert (audio.files_new, images.files_new) == (1, 1)
        assert result.windows_added == audio.windows_added + images.windows_added > 1
        assert {r.modality for r in store.recordings()} == {"audio", "image"}
    finally:
        store.close()
    assert result.empty == [empty] and result.failed == 1  # a folder holding neither is a failure to report
    assert seen[0] == Modality.AUDIO and seen[-1] == Modality.IMAGE


def test_an_unknown_vision_model_names_the_option_and_the_registered_ones(tmp_path):
    with pytest.raises(ValueError, match=r"--vision-model 'no-such-model' is neither a registered model \(.*"
                                         r"mobilenet.*\) nor a file"):
        vision_model(IngestSettings(vision_model="no-such-model"))
