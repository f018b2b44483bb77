"""Files in, embeddings and probabilities out, into the store: audio through BirdNET, images through a vision model.

Audio: chunked reading and resampling (``audio``, ``resample``), the model (``birdnet``), metadata from
sidecars, file names and folders (``metadata``), ingest (``ingest.ingest``) and a Ray cluster's ingest
(``cluster``). Images: reading frames (``image_files``), the vision model (``vision``), MegaDetector crops
(``detections``) and their ingest (``image_ingest.ingest_images``). Both decide what to do with a file
already stored the same way (``known_files``).

Import the entry points from their modules (``embeddings.ingest.ingest``): the package namespace does not
re-export them, so ``embeddings.ingest`` stays the module.
"""

from embeddings.audio import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, iter_windows, probe
from embeddings.birdnet import BirdNET, EmbeddingModel
from embeddings.metadata import (RecordingMetadata, Sidecar, looks_like_device_id, parse_filename,
                                 parse_folders, recording_metadata)

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "AudioReadError", "BirdNET", "EmbeddingModel", "RecordingMetadata",
           "Sidecar", "iter_windows", "looks_like_device_id", "parse_filename", "parse_folders", "probe",
           "recording_metadata"]
