"""Audio in, BirdNET probabilities and embeddings out: chunked reading, the model, metadata, ingest.

The entry point is ``embeddings.ingest.ingest`` (import it from its module: the package namespace does
not re-export it, so ``embeddings.ingest`` stays the module).
"""

from embeddings.audio import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, iter_windows, probe
from embeddings.birdnet import BirdNET, EmbeddingModel
from embeddings.metadata import (RecordingMetadata, Sidecar, looks_like_device_id, parse_filename,
                                 parse_folders, recording_metadata)

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "AudioReadError", "BirdNET", "EmbeddingModel", "RecordingMetadata",
           "Sidecar", "iter_windows", "looks_like_device_id", "parse_filename", "parse_folders", "probe",
           "recording_metadata"]
