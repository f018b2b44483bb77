"""Push, pull and the progress of each batch, for the CLI and the app's Annotate page alike.

Reaching the workspace's Label Studio and choosing the project are done here once (same label set, same
project title, same checks), so a push from the app is a ``workbench push``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from annotation.client import DOCUMENT_ROOT_ENV, LabelStudioClient, PullReport, PushReport
from annotation.errors import AnnotationError, AnnotationServerError
from annotation.projects import DEFAULT_MIN_CONFIDENCE, ensure_batch_project
from annotation.settings import DEFAULT_PROJECT
from store import Store
from store.roles import Ledger
from workbench.config import Workspace, labelstudio_settings
from workbench.console import progress


@dataclass(frozen=True)
class ProjectChoice:
    """What ``--project``, ``--label-set`` and ``--min-confidence`` say on the command line.

    ``named``: the title was given (``--project``, the app's field); without it push uses the default title and
    pull reads every project the workspace pushed to.
    """

    title: str = DEFAULT_PROJECT
    label_set: Optional[str] = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    boxes: bool = False
    named: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ProjectChoice":
        return cls(title=args.project or DEFAULT_PROJECT, label_set=args.label_set or None,
                   min_confidence=args.min_confidence, boxes=bool(getattr(args, "boxes", False)),
                   named=args.project is not None)


def connect(ws: Workspace) -> LabelStudioClient:
    """A client of the workspace's Label Studio, checked (``AnnotationServerError`` says what is wrong)."""
    # another server's document root (LABEL_STUDIO_DOCUMENT_ROOT) wins over the workspace's own media folder
    external = any(os.environ.get(k) for k in DOCUMENT_ROOT_ENV)
    settings = labelstudio_settings(ws)
    if not os.environ.get("LABEL_STUDIO_URL"):
        from workbench.services import labelstudio_of_another_workspace

        other = labelstudio_of_another_workspace(ws)
        if other is not None:  # its 401 would send the user to change a token that is right
            raise AnnotationServerError(
                f"the Label Studio at {settings.url} is the workspace {other}'s, not this one's: start this "
                f"workspace's own with `workbench serve` (WORKBENCH_LS_PORT=PORT puts it on another port), or set "
                f"LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to work in that server")
    client = LabelStudioClient(settings, document_root=None if external else ws.media)
    client.check()
    return client


def project_base(ws: Workspace) -> str:
    """The Label Studio URL annotators open."""
    return labelstudio_settings(ws).url


def project_url(ws: Workspace, project_id: int) -> str:
    """Where the project's tasks are listed in Label Studio."""
    return f"{labelstudio_settings(ws).url}/projects/{int(project_id)}/data"


def find_project(client: LabelStudioClient, choice: ProjectChoice) -> Optional[int]:
    """The project's id if it exists (read-only: looking does not create it)."""
    return client.find_project(choice.title)


def ensure_project(store: Store, client: LabelStudioClient, choice: ProjectChoice, ws: Workspace,
                   run_id: Optional[int] = None) -> int:
    """The project, created with its label set if missing, exactly as ``workbench push`` makes it."""
    return ensure_batch_project(store, client, ws.clips, title=choice.title, label_set=choice.label_set,
                                min_confidence=choice.min_confidence, run_id=run_id, boxes=choice.boxes,
                                progress=progress)


def push(ws: Workspace, store: Store, client: LabelStudioClient, choice: ProjectChoice,
         run_id: Optional[int] = None, *, overlap: float = 0.0, show_source: bool = False) -> PushReport:
    """``workbench push [--run ID] [--overlap SHARE] [--show-source]``: the run's clips (with their
    spectrograms) as tasks, never twice; a share of them for two experts; image species the workspace's
    geofence does not allow at a clip's country never pre-ticked."""
    from workbench.geofence_cmds import workspace_geofence

    project_id = ensure_project(store, client, choice, ws, run_id)
    return client.push(store, ws.clips, project_id, run_id=run_id, overlap=overlap, show_source=show_source,
                       geofence=workspace_geofence(ws))


def pull(store: Store, client: LabelStudioClient, choice: ProjectChoice,
         ws: Workspace) -> list[tuple[int, PullReport]]:
    """``workbench pull``: new, edited and deleted annotations come back from the project named, else from every
    project the store holds tasks of (none: nothing to pull). A pull never creates a project: a new one is empty."""
    if not choice.named:
        return [(pid, client.pull(store, pid)) for pid in store.task_projects()]
    if find_project(client, choice) is None:
        pushed = [f"{client.project_title(pid) or '(gone)'!r} (project {pid}, {n} task(s))"
                  for pid, n in store.task_projects().items()]
        where = (f"this workspace pushed to {', '.join(pushed)}: `workbench pull` without --project pulls "
                 f"{'it' if len(pushed) == 1 else 'them'}" if pushed else
                 f"push a batch there first (`workbench push --project {choice.title!r}`)")
        raise AnnotationError(f"no Label Studio project titled {choice.title!r} at {client.settings.url} (pull never "
                              f"creates one); {where}")
    project_id = ensure_project(store, client, choice, ws)
    return [(project_id, client.pull(store, project_id))]


def batch_progress(store: Ledger, project_ids: Iterable[int] = ()) -> pd.DataFrame:
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


def known_project_ids(store: Ledger) -> set[int]:
    """Projects the store has seen annotations from (when Label Studio cannot be asked)."""
    return {int(a.project_id) for a in store.annotations(state=None)}


__all__ = ["DEFAULT_PROJECT", "ProjectChoice", "batch_progress", "connect", "ensure_project", "find_project",
           "known_project_ids", "project_url", "pull", "push"]
