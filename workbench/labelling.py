"""Push, pull and the progress of each batch, for the app's Annotate page: the CLI's calls, plus a table.

Connecting and choosing the project go through the CLI's own ``_client`` and ``_project`` (same label
set, same project title, same checks), so a push from the app is a ``workbench push``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from annotation.client import LabelStudioClient, PullReport, PushReport
from store import Store
from workbench import cli
from workbench.config import Workspace, labelstudio_settings

DEFAULT_PROJECT = cli.DEFAULT_PROJECT
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class ProjectChoice:
    """What ``--project``, ``--label-set`` and ``--min-confidence`` say on the command line."""

    title: str = DEFAULT_PROJECT
    label_set: Optional[str] = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def as_args(self, **extra) -> argparse.Namespace:
        return argparse.Namespace(project=self.title, label_set=self.label_set or None,
                                  min_confidence=self.min_confidence, **extra)


def connect(ws: Workspace) -> LabelStudioClient:
    """A client of the workspace's Label Studio, checked (``AnnotationServerError`` says what is wrong)."""
    return cli._client(ws)  # noqa: SLF001 - the CLI's own way to reach the server


def project_url(ws: Workspace, project_id: int) -> str:
    """Where the project's tasks are listed in Label Studio."""
    return f"{labelstudio_settings(ws).url}/projects/{int(project_id)}/data"


def find_project(client: LabelStudioClient, choice: ProjectChoice) -> Optional[int]:
    """The project's id if it exists (read-only: looking does not create it)."""
    return client.find_project(choice.title)


def ensure_project(store: Store, client: LabelStudioClient, choice: ProjectChoice) -> int:
    """The project, created with its label set if missing, exactly as ``workbench push`` makes it."""
    return cli._project(store, client, choice.as_args())  # noqa: SLF001


def push(ws: Workspace, store: Store, client: LabelStudioClient, choice: ProjectChoice,
         run_id: Optional[int] = None) -> PushReport:
    """``workbench push [--run ID]``: the run's clips (with their spectrograms) as tasks, never twice."""
    project_id = ensure_project(store, client, choice)
    return client.push(store, ws.clips, project_id, run_id=run_id)


def pull(store: Store, client: LabelStudioClient, choice: ProjectChoice) -> tuple[int, PullReport]:
    """``workbench pull``: new, edited and deleted annotations of the project come back."""
    project_id = ensure_project(store, client, choice)
    return project_id, client.pull(store, project_id)


def batch_progress(store: Store, project_ids: Iterable[int] = ()) -> pd.DataFrame:
    """One row per sampling run: its picks, how many are tasks in the given projects, how many are labelled.

    Tasks are counted in ``project_ids`` (the store records tasks per project); active annotations in
    any project. A batch is done when every pick has an active annotation.
    """
    project_ids = sorted({int(p) for p in project_ids})
    tasks: set[int] = set()
    for pid in project_ids:
        tasks.update(store.tasks(pid))
    labelled: dict[int, int] = {}
    for a in store.annotations():
        labelled[int(a.clip_id)] = labelled.get(int(a.clip_id), 0) + 1
    rows = []
    for run in reversed(store.sampling_runs()):
        clips = [s.clip_id for s in store.selections(run.id)]
        done = sum(1 for c in clips if c in labelled)
        rows.append({"run": run.id, "created": f"{run.created_at:%Y-%m-%d %H:%M}", "strategy": run.strategy,
                     "seed": run.seed, "picks": len(clips),
                     "pushed": sum(1 for c in clips if c in tasks) if project_ids else None,
                     "labelled clips": done, "active annotations": sum(labelled.get(c, 0) for c in clips),
                     "labelled share": done / len(clips) if clips else 0.0})
    columns = ["run", "created", "strategy", "seed", "picks", "pushed", "labelled clips", "active annotations",
               "labelled share"]
    return pd.DataFrame(rows, columns=columns)


def known_project_ids(store: Store) -> set[int]:
    """Projects the store has seen annotations from (when Label Studio cannot be asked)."""
    return {int(a.project_id) for a in store.annotations(state=None)}


__all__ = ["DEFAULT_PROJECT", "ProjectChoice", "batch_progress", "connect", "ensure_project", "find_project",
           "known_project_ids", "project_url", "pull", "push"]
