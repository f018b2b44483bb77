"""What a workspace's store holds, in one read: the counts, the current model and the clips it has not scored,
and the sampling runs and model versions a flag (``--run``, ``--model-version``) can name.

`workbench status` prints it; the app's Pool and Sample pages show the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from store.schema import ModelVersion, SamplingRun

if TYPE_CHECKING:
    from store.store import Store


@dataclass(frozen=True)
class StoreStatus:
    """``counts`` as ``Store.counts`` gives them (recordings, failed_recordings, clips, sampling_runs, selected,
    tasks, annotations, model_versions); ``model`` the current model version (None: nothing scored yet);
    ``unscored`` the clips it has not scored yet (ingested after a head was trained; 0 without a model);
    ``runs`` and ``model_versions`` every sampling run and model version, oldest first."""

    counts: dict[str, int]
    model: Optional[ModelVersion]
    unscored: int
    runs: tuple[SamplingRun, ...] = ()
    model_versions: tuple[ModelVersion, ...] = ()

    @property
    def macro_recall(self) -> Optional[float]:
        """The current model's held-out macro recall, where it was evaluated (a fine-tuned head)."""
        value = (self.model.metrics or {}).get("macro_recall") if self.model is not None else None
        return None if value is None else float(value)


def store_status(store: Store) -> StoreStatus:
    """The store's counts, its current model version and how many clips that model has not scored."""
    mv = store.current_model_version()
    return StoreStatus(counts=store.counts(), model=mv,
                       unscored=int(store.unscored_clip_ids(mv).size) if mv is not None else 0,
                       runs=tuple(store.sampling_runs()), model_versions=tuple(store.model_versions()))
