"""Fine-tuning: a multi-label head on frozen embeddings, trained on the expert labels.

``finetune.train.finetune`` trains, evaluates (macro recall per class and per site), records the
head as a new model version and re-scores the pool with it; ``finetune.scoring`` has the current head
score clips ingested after it was trained (before a batch is picked). ``finetune.export`` writes detections as
BirdNET-Analyzer's CSV or Raven tables; ``finetune.custom_classifier`` writes a head as a BirdNET custom
classifier (a .tflite and its labels) for BirdNET-Analyzer, BirdNET-Pi, birdnet-go and birdnetlib.
"""

from finetune.evaluate import evaluate, split_key, stratified_split
from finetune.head import ClassifierHead, label_matrix
from finetune.scoring import sample_scored, score_new_clips
from finetune.train import FinetuneError, finetune, rescore

__all__ = ["ClassifierHead", "FinetuneError", "evaluate", "finetune", "label_matrix", "rescore", "sample_scored",
           "score_new_clips", "split_key", "stratified_split"]
