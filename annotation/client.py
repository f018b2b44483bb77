"""Talk to Label Studio: make the project, push a sampling run's clips as tasks, pull annotations back.

Label Studio is the annotators' tool; the store stays the source of truth for the workbench. Both
directions are safe to rerun:

* ``push`` reconciles with the tasks already in the project (by ``data.clip_id``) before importing, so
  a rerun, even after a crash between the import and the store's record, never duplicates a task.
* ``pull`` re-reads tasks whose ``updated_at`` is past the stored watermark (minus a small overlap) and
  upserts their annotations, so new, edited and deleted annotations all reach the store, and rereading
  is harmless.

Pre-annotations carry the model version and its top-1 probability. A predicted species outside the
label set is left out of the pre-annotation (not mapped to "Other": a ticked "Other" would nudge the
annotator); every pre-annotation is validated against the project's config before it is sent, and one
that does not fit (the config was edited in Label Studio) stops the push with the clip and label named.
An annotation that chooses a label outside the project's label set is stored as ``rejected`` with a note
naming the label, so nothing is lost and it is never trained on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.label_interface import LabelInterface

from annotation.clips import CutClip, check_sources, cut_clip
from annotation.answers import SKIPPED, field_of as _get, read_answer, typed_names
from annotation.config import (AUDIO, BOX, BOX_LABEL, FRAME, IMAGE, REVIEW, SPECIES, SPECTROGRAM, SUGGESTIONS, TITLE,
                               WINDOW, config_for,
                               has_taxonomy, modality_of, species_labels, validate_config)
from annotation.labelset import derive_label_set, display_label
from annotation.vocabulary import NOISE, OTHER, Vocabulary, store_vocabulary
from annotation.images import CutImage, cut_image_clip
from annotation.geofencing import fenced_choices
from annotation.errors import AnnotationError, AnnotationServerError
from store import (Annotation, AnnotationState, ClipInfo, LabelSet, LockName, Modality, ModelVersion, RecordingStatus,
                   SamplingRun, Store, StoreError, Task)
from store.geofence import Geofence
from store.roles import Ledger, Records
from annotation.settings import LabelStudioSettings

log = logging.getLogger(__name__)

__all__ = ["AnnotationError", "AnnotationServerError", "LabelStudioClient", "PullReport", "PushReport",
           "build_prediction", "DEFAULT_TITLE_PREFIX"]

DEFAULT_TITLE_PREFIX = "Workbench: "
LABEL_SET_MARKER = "workbench label set: "
LS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the only format Label Studio's Datetime filter accepts
PREPARE_THREADS = max(1, min(8, os.cpu_count() or 1))  # threads cutting clips and drawing spectrograms
VOCABULARY_DIR = "vocabulary"  # below the clips folder: the species trees annotators search
DOCUMENT_ROOT_ENV = ("LABEL_STUDIO_DOCUMENT_ROOT", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")


@dataclass
class PushReport:
    """``created`` new tasks; ``skipped`` clips of the selection already in the project.

    ``failed`` lists (clip id, source file, reason) for clips that could not be prepared (their file
    is missing, changed since ingest, or unreadable): every other clip was pushed, and a later push
    retries these. ``replaced`` lists (clip id, source file) for clips of a recording version that a
    re-ingest replaced: they left the pool, so no push sends them, and nothing is left for the user to fix.
    """

    created: int
    skipped: int
    project_id: int = 0
    run_id: int = 0
    task_ids: dict[int, int] = field(default_factory=dict)  # clip id -> Label Studio task id, whole selection
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    overlap: int = 0  # new tasks that ask two experts
    replaced: list[tuple[int, str]] = field(default_factory=list)
    overlap_not_applied: int = 0  # tasks already there when an overlap was asked: it applies to new tasks only

    def summary(self) -> str:
        """``"3 new task(s) (1 for two experts), 2 already there, 1 not pushed, 4 of a replaced recording"``."""
        return (f"{self.created} new task(s)" + (f" ({self.overlap} for two experts)" if self.overlap else "")
                + f", {self.skipped} already there" + (f", {len(self.failed)} not pushed" if self.failed else "")
                + (f", {len(self.replaced)} of a replaced recording" if self.replaced else ""))

    def overlap_note(self, what: str = "--overlap") -> Optional[str]:
        """Why the overlap asked for (``what``: how the user asked) did not reach the tasks already pushed; None
        when that did not come up."""
        if not self.overlap_not_applied:
            return None
        return (f"{what} applies to new tasks only: {self.overlap_not_applied} task(s) of run {self.run_id} "
                f"already exist and keep the number of experts they asked for")

    def replaced_lines(self) -> list[str]:
        """One line per file whose old version's clips were left out, saying what to do instead."""
        by_file: dict[str, list[int]] = {}
        for clip_id, path in self.replaced:
            by_file.setdefault(path, []).append(int(clip_id))
        lines = []
        for path, clips in by_file.items():
            one = len(clips) == 1
            lines.append(f"clip{'' if one else 's'} {', '.join(map(str, clips))} ({Path(path).name}) "
                         f"belong{'s' if one else ''} to a replaced version of {'its' if one else 'their'} recording "
                         f"({'it' if one else 'they'} left the pool): sample again to label the new version")
        return lines


@dataclass
class PullReport:
    """Annotations seen by one pull.

    ``new``, ``updated`` and ``unchanged`` partition every annotation read; ``rejected`` counts those of
    them newly stored as rejected (a label outside the label set, or no species chosen), ``skipped`` those
    the annotator skipped, ``deleted`` annotations Label Studio no longer has. ``problems`` says why.
    """

    new: int = 0
    updated: int = 0
    deleted: int = 0
    rejected: int = 0
    unchanged: int = 0
    skipped: int = 0
    tasks_read: int = 0
    watermark: Optional[datetime] = None
    problems: list[str] = field(default_factory=list)
    usable: int = 0                     # of the new and updated annotations, those stored active (trainable)
    new_species: list[str] = field(default_factory=list)  # names experts gave that the label set lacked
    label_set: Optional[str] = None     # the label set derived with them (the next push offers it)
    rejections: list[tuple[int, int, str, str]] = field(default_factory=list)  # (clip, task, annotator, reason)

    def summary(self, project_id: int) -> str:
        """One line: what came back and how much of it training can use."""
        if not (self.new or self.updated):
            return f"pulled from project {project_id}: nothing new ({self.unchanged} unchanged, {self.deleted} deleted)"
        return (f"pulled from project {project_id}: {self.new} new, {self.updated} updated ({self.usable} usable, "
                f"{self.rejected} rejected, {self.skipped} skipped), {self.deleted} deleted, {self.unchanged} "
                f"unchanged")


def _aware(value: Any) -> Optional[datetime]:
    """A Label Studio timestamp (ISO string or datetime) as aware UTC; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


MAX_PRETICKED = 3            # at most this many species pre-ticked: an expert corrects a short list, not a long one
BASE_MODEL_THRESHOLD = 0.1   # BirdNET-Analyzer's default minimum confidence, for clips scored by the base model
HEAD_THRESHOLD = 0.5         # a fine-tuned head's decision threshold when its metrics do not record one


def decision_threshold(model_version: ModelVersion) -> float:
    """The score above which a species counts as predicted: a head's own threshold, else BirdNET-Analyzer's."""
    if model_version.kind == "classifier":
        return float((model_version.params or {}).get("threshold") or
                     (model_version.metrics or {}).get("threshold") or HEAD_THRESHOLD)
    return BASE_MODEL_THRESHOLD


def preticked(predictions: Sequence[tuple[str, float]], offered: Sequence[str], threshold: float,
              max_species: int = MAX_PRETICKED) -> list[str]:
    """The species a pre-annotation ticks: offered ones at or above ``threshold``, best first, at most
    ``max_species``; Other never (it means "the species is below"); Noise only alone, when it is the best."""
    offered = set(offered)
    above = [lab for lab, p in sorted(predictions, key=lambda x: -x[1])
             if p >= threshold and lab in offered and lab != OTHER]
    if above and above[0] == NOISE:
        return [NOISE]
    return [lab for lab in above if lab != NOISE][: int(max_species)]


def suggestions(predictions: Sequence[tuple[str, float]], n: int = 5) -> list[dict[str, str]]:
    """A task's own species choices: the clip's most likely species with the model's score, best first."""
    out = []
    for lab, p in sorted(predictions, key=lambda x: -x[1]):
        if lab in (NOISE, OTHER) or len(out) >= n:
            continue
        out.append({"value": f"{display_label(lab)} {p:.2f}", "alias": lab})
    return out


def build_prediction(clip_id: int, predictions: Sequence[tuple[str, float]], labels: Sequence[str],
                     window: Optional[tuple[float, float]], model_version: str, interface: LabelInterface,
                     min_probability: float = BASE_MODEL_THRESHOLD,
                     box: Optional[tuple[float, float, float, float]] = None, dynamic: bool = False) -> dict[str, Any]:
    """One pre-annotation: the species of ``labels`` (what the task offers) the model predicts at or above
    ``min_probability`` ticked (see ``preticked``; only the best one where the project asks for one species),
    and the window drawn (audio), or the detector's box on the frame (images, when the config has boxes).

    ``score`` is the top-1 probability. The result is validated against ``interface`` (the project's
    config); a mismatch raises ``AnnotationError`` naming the clip and the label. ``dynamic``: the species
    choices come with the task (``labels`` are the task's own), which the SDK cannot check, so they are
    checked here and the rest of the result by the SDK.
    """
    ticked = preticked(predictions, labels, min_probability, max_species=1 if _asks_one(interface) else MAX_PRETICKED)
    target = AUDIO if window is not None else IMAGE
    result: list[dict[str, Any]] = []
    if ticked:
        result.append({"from_name": SPECIES, "to_name": target, "type": "choices", "value": {"choices": ticked}})
    if window is not None:
        result.append({"id": f"window-{clip_id}", "from_name": WINDOW, "to_name": AUDIO, "type": "labels",
                       "readonly": False,
                       "value": {"start": float(window[0]), "end": float(window[1]), "channel": 0,
                                 "labels": [WINDOW]}})
    elif box is not None and _has_control(interface, BOX):
        x, y, w, h = box  # Label Studio places rectangles in percent of the image
        result.append({"id": f"box-{clip_id}", "from_name": BOX, "to_name": FRAME, "type": "rectanglelabels",
                       "value": {"x": 100 * x, "y": 100 * y, "width": 100 * w, "height": 100 * h, "rotation": 0,
                                 "rectanglelabels": [BOX_LABEL]}})
    pred = {"model_version": model_version, "score": float(predictions[0][1]) if predictions else 0.0,
            "result": result}
    checked = {**pred, "result": [r for r in result if r["from_name"] != SPECIES]} if dynamic else pred
    errors = interface.validate_prediction(checked, return_errors=True)
    if errors:
        try:
            choices = set(interface.get_control(SPECIES).labels)
        except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for a missing tag
            choices = set()
        bad = [lab for lab in ticked if lab not in choices]
        what = (f"label {bad[0]!r} is not a choice of the project's label config" if bad
                else "it does not fit the project's label config")
        raise AnnotationError(
            f"pre-annotation of clip {clip_id}: {what} ({'; '.join(errors)}). The project's config was probably "
            f"edited in Label Studio: recreate it from the label set with ensure_project(), or push with a "
            f"label set that matches it")
    return pred


def _asks_one(interface: LabelInterface) -> bool:
    """The project's species control takes one choice (``choice="single"``, a softmax image model): push
    pre-ticks one species, not three, and pull refuses answers naming several."""
    try:
        return str(interface.get_control(SPECIES).attr.get("choice", "")).lower() == "single"
    except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for a missing tag
        return False


def _has_control(interface: LabelInterface, name: str) -> bool:
    try:
        interface.get_control(name)
        return True
    except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for a missing tag
        return False


def sampling_run(store: Ledger, run_id: Optional[int]) -> Optional[SamplingRun]:
    """Sampling run ``run_id``, or by default the last one (None when the store holds none); an unknown id is
    an error that says where the runs are listed."""
    if run_id is None:
        return store.last_sampling_run()
    runs = store.sampling_runs()
    for run in runs:
        if run.id == int(run_id):
            return run
    held = f"it holds runs {runs[0].id} to {runs[-1].id}" if runs else "it holds none: `workbench sample` makes one"
    raise AnnotationError(f"no sampling run {run_id} in this store ({held}); `workbench status` lists the runs")


class LabelStudioClient:
    """The workbench's view of one Label Studio server (URL and token from ``settings``).

    Parameters
    ----------
    settings : LabelStudioSettings
        URL and API token (legacy token or personal access token).
    timeout : float
        Seconds per HTTP request.
    max_retries : int
        Retries of a failed request (the SDK backs off between them).
    document_root : path, optional
        The server's local-files document root (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT). Default: the
        environment's LABEL_STUDIO_DOCUMENT_ROOT, else the workspace's ``media`` folder (what
        ``LocalLabelStudio`` serves), else the folder above the clips folder. Clip URLs are relative to it.
    """

    def __init__(self, settings: LabelStudioSettings, timeout: float = 30.0, max_retries: int = 1,
                 document_root: Optional[Path | str] = None):
        self.settings = settings
        self.timeout = timeout
        self.max_retries = max_retries
        self.document_root = document_root
        self._sdk: Optional[LabelStudio] = None
        self._users: dict[int, str] = {}
        self._trees: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def sdk(self) -> LabelStudio:
        """The SDK client (made on first use)."""
        if self._sdk is None:
            self._sdk = LabelStudio(base_url=self.settings.url, api_key=self.settings.token,
                                    timeout=self.timeout, max_retries=self.max_retries)
        return self._sdk

    def _redact(self, text: str) -> str:
        return text.replace(self.settings.token, "***") if self.settings.token else text

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Map the SDK's and httpx's failures to ``AnnotationServerError`` naming the URL and the fix."""
        url = self.settings.url
        try:
            yield
        except httpx.TimeoutException as e:
            raise AnnotationServerError(
                f"Label Studio at {url} did not answer in {self.timeout:.0f} s while trying to {what}; it may be "
                f"overloaded or still starting: retry, or raise the client's timeout") from e
        except httpx.TransportError as e:
            raise AnnotationServerError(
                f"cannot reach Label Studio at {url} (trying to {what}: {type(e).__name__}). Is it running? Start "
                f"the workspace's server with `workbench serve`, or set LABEL_STUDIO_URL to a running one") from e
        except ApiError as e:
            status = e.status_code
            if status == 401:
                raise AnnotationServerError(
                    f"Label Studio at {url} rejected the API token (401 Unauthorized) while trying to {what}: set "
                    f"LABEL_STUDIO_API_KEY to a valid token, or fix 'token' in the workspace's secrets.json (the "
                    f"local server keeps the token its data dir was first created with)") from e
            if status == 403:
                raise AnnotationServerError(
                    f"Label Studio at {url} refused to {what} (403 Forbidden): the token's user lacks the "
                    f"permission; use an administrator's token") from e
            detail = e.body.get("detail") or e.body.get("validation_errors") if isinstance(e.body, dict) else e.body
            raise AnnotationServerError(self._redact(
                f"Label Studio at {url} answered {status} when trying to {what}: {detail}")) from e

    def check(self) -> str:
        """Fail early with a clear message when the server is down or the token is wrong; return the user's email."""
        with self._call("check the API token"):
            me = self.sdk.users.whoami()
        return str(_get(me, "email") or _get(me, "username") or "")

    def invite_link(self) -> str:
        """The organisation's sign-up link for another expert (works with open sign-up disabled)."""
        with self._call("read the invite link"):
            path = str(_get(self.sdk.organizations.invites.get_invite_link(), "invite_url") or "")
        if not path:
            raise AnnotationServerError(f"Label Studio at {self.settings.url} gave no invite link")
        return path if path.startswith("http") else f"{self.settings.url.rstrip('/')}{path}"

    # ------------------------------------------------------------------ projects
    def _project(self, project_id: int) -> Any:
        with self._call(f"read project {project_id}"):
            return self.sdk.projects.get(id=int(project_id))

    def project_title(self, project_id: int) -> Optional[str]:
        """The title of project ``project_id``, or None when the server has no such project."""
        try:
            return str(self._project(project_id).title)
        except AnnotationServerError as e:
            if isinstance(e.__cause__, ApiError) and e.__cause__.status_code == 404:
                return None
            raise

    def find_project(self, title: str) -> Optional[int]:
        """Id of the oldest project with exactly this title, or None."""
        with self._call(f"list projects titled {title!r}"):
            found = [int(p.id) for p in self.sdk.projects.list(title=title, page_size=100) if p.title == title]
        return min(found) if found else None

    def ensure_project(self, label_set: LabelSet, title: Optional[str] = None, *,
                       clips_dir: Optional[Path] = None, modality: str = Modality.AUDIO, boxes: bool = False,
                       vocabulary: Optional[Vocabulary] = None, single: bool = False) -> int:
        """The id of the project titled ``title`` (default from the label set's name), created if missing.

        A reused project whose config differs gets the label set's config (Label Studio refuses the change
        if existing annotations use a label it drops). With ``clips_dir``, the local-files storage that
        lets Label Studio serve the clips in it is ensured too (``push`` always ensures it). ``modality``
        ("audio" or "image") chooses the config; ``boxes`` lets image annotators correct detector boxes.
        With ``vocabulary`` (needs ``clips_dir``: its tree is served from there) annotators choose among each
        clip's likely species and search every name of the vocabulary; ``single``: one species per clip.
        """
        title = title or f"{DEFAULT_TITLE_PREFIX}{label_set.name}"
        taxonomy_url, n_classes = None, 0
        if vocabulary is not None:
            if clips_dir is None:
                raise AnnotationError("a project with a species search needs clips_dir: its tree is served from there")
            taxonomy_url = self._taxonomy_url(vocabulary, Path(clips_dir))
            n_classes = sum(1 for x in vocabulary.labels if x not in (NOISE, OTHER))
        config = config_for(label_set.labels, modality, boxes, taxonomy_url=taxonomy_url, single=single,
                            n_classes=n_classes)
        verb = "hear" if modality == Modality.AUDIO else "see"
        how = "the species" if single else "every species"
        description = (f"Clips picked by the active-learning workbench. Tick {how} you {verb}.\n"
                       f"{LABEL_SET_MARKER}{label_set.name}")
        pid = self.find_project(title)
        if pid is None:
            with self._call(f"create project {title!r}"):
                pid = int(self.sdk.projects.create(title=title, label_config=config, description=description).id)
            log.info("created Label Studio project %s (%r) for label set %r", pid, title, label_set.name)
        else:
            project = self._project(pid)
            if project.label_config != config or (project.description or "") != description:
                with self._call(f"update the label config of project {pid} ({title!r}) to label set "
                                f"{label_set.name!r} (or use a new project title for a new label set)"):
                    self.sdk.projects.update(id=pid, label_config=config, description=description)
                log.info("updated project %s (%r) to label set %r", pid, title, label_set.name)
        if clips_dir is not None:
            self.ensure_storage(pid, clips_dir)
        return pid

    def _taxonomy_url(self, vocabulary: Vocabulary, clips_dir: Path) -> str:
        """Where annotators' browsers fetch the vocabulary's tree: a file below the clips folder (served by the
        clips' local-files storage), as an absolute URL (Label Studio's Taxonomy needs one)."""
        root = self._document_root(clips_dir)
        path = vocabulary.write_tree(Path(clips_dir) / VOCABULARY_DIR)
        return f"{self.settings.url.rstrip('/')}/data/local-files/?d={path.resolve().relative_to(root).as_posix()}"

    def _document_root(self, clips_dir: Path) -> Path:
        """Where the server's ``/data/local-files/?d=`` paths start; the clips folder must lie below it."""
        clips_dir = Path(clips_dir)
        root = self.document_root or next((os.environ[k] for k in DOCUMENT_ROOT_ENV if os.environ.get(k)), None)
        root = Path(root or clips_dir.parent).resolve()
        if not clips_dir.resolve().is_relative_to(root):
            raise AnnotationError(
                f"the clips folder {clips_dir} is not below Label Studio's document root {root}, so the "
                f"server cannot serve them: use a workspace inside it, or set LABEL_STUDIO_DOCUMENT_ROOT to the "
                f"server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
        return root

    def ensure_storage(self, project_id: int, clips_dir: Path) -> None:
        """A local-files import storage over ``clips_dir``: without it Label Studio answers 404 for the clips.

        It is never synced (that would import every clip file as a task); it only grants access.
        """
        root = self._document_root(clips_dir)
        clips = Path(clips_dir)
        clips.mkdir(parents=True, exist_ok=True)
        path = str(clips.resolve())
        with self._call(f"list the local-files storages of project {project_id}"):
            storages = list(self.sdk.import_storage.local.list(project=int(project_id)))
        if any(str(_get(s, "path", "")).rstrip("/") == path for s in storages):
            return
        with self._call(f"add a local-files storage for {path} to project {project_id} (the server's "
                        f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT must be {root} or a folder above it)"):
            self.sdk.import_storage.local.create(project=int(project_id), path=path, use_blob_urls=True,
                                                 title="workbench clips")

    def project_task_ids(self, project_id: int) -> dict[int, int]:
        """clip id -> task id of the tasks in a project that carry a ``clip_id`` (oldest task wins)."""
        return {c: tid for c, (tid, _) in self._project_tasks(project_id).items()}

    def _listed_tasks(self, project_id: int) -> list[tuple[int, dict]]:
        """(task id, task data) of every task in a project: one listing, read by both views below."""
        with self._call(f"list the tasks of project {project_id}"):
            return [(int(_get(t, "id")), _get(t, "data") or {})
                    for t in self.sdk.tasks.list(project=int(project_id), include="id,data", page_size=500)]

    def _project_tasks(self, project_id: int) -> dict[int, tuple[int, dict]]:
        """clip id -> (task id, task data) of the tasks in a project that carry a ``clip_id`` (oldest wins)."""
        out: dict[int, tuple[int, dict]] = {}
        for tid, data in self._listed_tasks(project_id):
            clip = data.get("clip_id")
            if clip is None:
                continue
            if int(clip) not in out or tid < out[int(clip)][0]:
                out[int(clip)] = (tid, data)
        return out

    # ------------------------------------------------------------------ push
    def push(self, store: Store, clips_dir: Path, project_id: int, run_id: Optional[int] = None,
             model_version: ModelVersion | str | int | None = None, *, context_s: float = 2.0,
             min_probability: Optional[float] = None, batch_size: int = 100, overlap: float = 0.0,
             show_source: bool = False, random_state: Optional[int] = 0, geofence: Optional[Geofence] = None
             ) -> PushReport:
        """Send a sampling run's clips (default: the last run) to the project as tasks with pre-annotations.

        Clips already in the project are skipped (and recorded in the store if a crashed push left them
        unrecorded). Every pre-annotation is validated before anything is imported. A clip that cannot be
        prepared (source missing, changed since ingest, unreadable) never blocks the others: it is
        listed in the report's ``failed`` with its file and reason, and a later push retries it.

        Species are pre-ticked from ``min_probability`` up (default: the model's decision threshold, see
        ``decision_threshold``). ``overlap``: the share of the new tasks (seeded by ``random_state`` and the
        run) that asks two experts, to measure agreement. Tasks are blind (clip number only) unless
        ``show_source`` puts file, site and time in the header. ``geofence``: image species not allowed at a
        clip's country are never pre-ticked (``annotation.geofencing``).
        """
        if not 0.0 <= float(overlap) <= 1.0:
            raise AnnotationError(f"overlap must be a share within [0, 1] (0.1: a tenth of each batch labelled "
                                  f"twice), got {overlap!r}")
        with store.lock(LockName.ANNOTATION):  # two pushes at once would import the same clips twice
            return self._push(store, clips_dir, project_id, run_id, model_version, context_s=context_s,
                              min_probability=min_probability, batch_size=batch_size, overlap=float(overlap),
                              show_source=show_source, random_state=random_state, geofence=geofence)

    def _push(self, store: Store, clips_dir: Path, project_id: int, run_id: Optional[int],
              model_version: ModelVersion | str | int | None, *, context_s: float, min_probability: Optional[float],
              batch_size: int, overlap: float, show_source: bool, random_state: Optional[int],
              geofence: Optional[Geofence] = None) -> PushReport:
        run = self._run(store, run_id)
        mv = self._model_version(store, model_version, run.model_version_id)
        threshold = decision_threshold(mv) if min_probability is None else float(min_probability)
        picks = store.selections(run.id)
        project = self._project(project_id)
        interface = validate_config(project.label_config)
        allowed = species_labels(project.label_config)
        dynamic = has_taxonomy(project.label_config)
        if picks:
            clip_modality = store.clips([picks[0].clip_id])[0].modality
            if modality_of(project.label_config) != clip_modality:
                raise AnnotationError(f"project {project_id} ({project.title!r}) is set up for "
                                      f"{modality_of(project.label_config)} clips, but run {run.id} picked "
                                      f"{clip_modality} clips: push them to another project (--project)")
        label_set = self._label_set_of(store, project)
        labels = list(label_set.labels) if label_set is not None and not dynamic else allowed
        self.ensure_storage(project_id, clips_dir)

        tasks_now = self._project_tasks(project_id)
        in_project = {c: tid for c, (tid, _) in tasks_now.items()}
        recorded = store.tasks(project_id)
        self._check_same_project(int(project_id), recorded, {tid: c for c, tid in in_project.items()})
        label_set_id = label_set.id if label_set is not None else None
        unrecorded = [c for c in dict.fromkeys(p.clip_id for p in picks) if c in in_project and c not in recorded]
        if dynamic:
            self._upgrade_tasks(store, project_id, tasks_now, mv, show_source)
        gone = [p.clip_id for p in picks if p.clip_id in recorded and p.clip_id not in in_project]
        if gone:
            log.warning("%d clip(s) of run %s were pushed to project %s before but their tasks were deleted "
                        "there; not pushing them again (e.g. clip %s)", len(gone), run.id, project_id, gone[0])
        todo = list(dict.fromkeys(p.clip_id for p in picks if p.clip_id not in in_project and p.clip_id not in recorded))
        if unrecorded:  # a push killed after its import: its tasks get the overlap it was about to give them
            log.info("project %s already holds %d task(s) of run %s the store had not recorded; recording them",
                     project_id, len(unrecorded), run.id)
            again = set(overlap_share(unrecorded, overlap, random_state, run.id))
            for c in sorted(again):  # setting it again is harmless
                with self._call(f"ask two experts for task {in_project[c]} (clip {c})"):
                    self.sdk.tasks.update(id=in_project[c], overlap=2)
            store.add_tasks([Task(project_id=int(project_id), clip_id=c, ls_task_id=in_project[c],
                                  label_set_id=label_set_id, run_id=run.id, overlap=2 if c in again else 1)
                             for c in unrecorded])

        # a re-ingest replaced their recording: its file now holds the new version, never to be cut for these
        replaced = [(i.clip_id, i.path) for i in (store.clips(todo) if todo else [])
                    if i.status == RecordingStatus.REPLACED]
        if replaced:
            gone_for_good = {c for c, _ in replaced}
            todo = [c for c in todo if c not in gone_for_good]
        payload, failed = self._build_tasks(store, clips_dir, self._document_root(clips_dir), todo, mv, labels,
                                            interface, context_s, threshold, dynamic=dynamic,
                                            show_source=show_source, geofence=geofence)
        stream = "audit" if run.strategy == "audit" else "active learning"  # the lead filters on it in Label Studio
        for task in payload:
            task["data"]["stream"] = stream
        if failed:
            bad = {c for c, _, _ in failed}
            todo = [c for c in todo if c not in bad]
            for clip_id, path, reason in failed:  # the report names them to the user: logged for -v only
                log.info("clip %s not pushed: %s", clip_id, reason)
        imported: dict[int, int] = {}
        for start in range(0, len(payload), batch_size):
            batch = payload[start:start + batch_size]
            with self._call(f"import {len(batch)} task(s) into project {project_id}"):
                res = self.sdk.projects.import_tasks(id=int(project_id), request=batch, return_task_ids=True)
            ids = list(_get(res, "task_ids") or [])
            if len(ids) == len(batch):  # in the order sent: no need to list the project again
                imported.update({int(t["data"]["clip_id"]): int(i) for t, i in zip(batch, ids)})
        twice: set[int] = set()
        if payload:
            self._use_model_version(project, mv.name)
            if len(imported) == len(payload):
                in_project = {**in_project, **imported}
            else:
                in_project = self.project_task_ids(project_id)
            missing = [c for c in todo if c not in in_project]
            if missing:
                raise AnnotationServerError(f"Label Studio at {self.settings.url} accepted the import but project "
                                            f"{project_id} lacks the tasks of {len(missing)} clip(s) (e.g. clip "
                                            f"{missing[0]}); push again to reconcile")
            twice = set(overlap_share(todo, overlap, random_state, run.id))
            for c in sorted(twice):
                with self._call(f"ask two experts for task {in_project[c]} (clip {c})"):
                    self.sdk.tasks.update(id=in_project[c], overlap=2)
            store.add_tasks([Task(project_id=int(project_id), clip_id=c, ls_task_id=in_project[c],
                                  label_set_id=label_set_id, run_id=run.id, overlap=2 if c in twice else 1)
                             for c in todo])
        skipped = len(picks) - len(todo) - len(failed) - len(replaced)
        log.info("pushed run %s to project %s: %d new task(s) (%d for two experts), %d already there, %d failed, "
                 "%d of a replaced recording", run.id, project_id, len(todo), len(twice), skipped, len(failed),
                 len(replaced))
        existing = {p.clip_id for p in picks if p.clip_id in recorded and p.clip_id in in_project}
        return PushReport(created=len(todo), skipped=skipped, project_id=int(project_id), run_id=int(run.id),
                          task_ids={p.clip_id: in_project[p.clip_id] for p in picks if p.clip_id in in_project},
                          failed=failed, overlap=len(twice), replaced=replaced,
                          overlap_not_applied=len(existing) if overlap > 0 else 0)

    def _upgrade_tasks(self, store: Store, project_id: int, tasks: dict[int, tuple[int, dict]], mv: ModelVersion,
                       show_source: bool) -> None:
        """Tasks pushed by an earlier release (fixed species list, file name in the header) get this release's
        fields: their clip's suggestions, a blind title and an empty review note."""
        old = {c: (tid, data) for c, (tid, data) in tasks.items() if SUGGESTIONS not in data}
        if not old:
            return
        known = set(store.tasks(project_id))
        ids = [c for c in old if c in known]
        infos = {i.clip_id: i for i in store.clips(ids)} if ids else {}
        preds = store.predictions(ids, mv.id) if ids else {}
        for c, (tid, data) in old.items():
            new = {k: v for k, v in data.items() if show_source or k not in SOURCE_FIELDS}
            new.update({SUGGESTIONS: suggestions(preds.get(c, [])), REVIEW: data.get(REVIEW, "")})
            new[TITLE] = title_of(infos[c], show_source) if c in infos else f"Clip {c}"
            with self._call(f"update task {tid} (clip {c}) to this release's fields"):
                self.sdk.tasks.update(id=tid, data=new)
        log.info("project %s: %d task(s) of an earlier release got suggestions and a blind title", project_id, len(old))

    @staticmethod
    def _run(store: Ledger, run_id: Optional[int]) -> SamplingRun:
        run = sampling_run(store, run_id)
        if run is None:
            raise AnnotationError("the store holds no sampling run: run `workbench sample` before pushing")
        return run

    @staticmethod
    def _model_version(store: Records, model_version: ModelVersion | str | int | None,
                       run_model_version_id: Optional[int]) -> ModelVersion:
        if isinstance(model_version, ModelVersion):
            return model_version
        if model_version is not None:
            return store.model_version(model_version)
        if run_model_version_id is not None:
            return store.model_version(int(run_model_version_id))
        mv = store.current_model_version()
        if mv is None:
            raise AnnotationError("the store holds no scored clips, so there is nothing to pre-annotate with: "
                                  "ingest audio first")
        return mv

    @staticmethod
    def _label_set_of(store: Ledger, project: Any) -> Optional[LabelSet]:
        """The store's label set named in the project's description (set by ``ensure_project``)."""
        m = re.search(re.escape(LABEL_SET_MARKER) + r"(.+)$", project.description or "", flags=re.M)
        if not m:
            return None
        name = m.group(1).strip()
        ls = store.label_set(name)
        if ls is None:
            log.warning("project %s names label set %r, which this store lacks; using its config's choices",
                        project.id, name)
        return ls

    def _use_model_version(self, project: Any, name: str) -> None:
        """Label Studio pre-labels with the predictions of the project's model version: point it at ours."""
        if (project.model_version or "") != name:
            with self._call(f"set the model version of project {project.id} to {name!r}"):
                self.sdk.projects.update(id=int(project.id), model_version=name)

    @staticmethod
    def _build_tasks(store: Store, clips_dir: Path, document_root: Path, clip_ids: list[int], mv: ModelVersion,
                     labels: Sequence[str], interface: LabelInterface, context_s: float,
                     min_probability: float, *, dynamic: bool = True, show_source: bool = False,
                     geofence: Optional[Geofence] = None) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
        """Task payloads of the clips that could be prepared, and (clip id, file, reason) of those that could not.

        ``dynamic``: the project offers each clip's own likely species (``suggestions``) beside Noise and
        Other; otherwise the fixed ``labels``."""
        from annotation.spectrogram import clip_spectrogram

        if not clip_ids:
            return [], []
        infos = store.clips(clip_ids)
        preds = store.predictions(clip_ids, mv.id)
        problems = check_sources(store, infos)

        def prepare(info: ClipInfo) -> CutClip | CutImage | str:
            """The clip cut (and its spectrogram drawn), or why it could not be."""
            if problems.get(info.recording_id) is not None:
                return problems[info.recording_id]
            try:
                if info.modality == Modality.IMAGE:
                    return cut_image_clip(info, clips_dir)
                cut = cut_clip(info, clips_dir, context_s=context_s)
                clip_spectrogram(cut)  # task_data links it: an unrenderable clip fails like an uncut one
                return replace(cut, samples=None)  # a batch's samples would fill memory
            except (AnnotationError, OSError) as e:
                return str(e)

        # reading, cutting, the STFT and PNG encoding release the GIL: one thread per core overlaps them
        workers = max(1, min(PREPARE_THREADS, len(infos)))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push-prepare") as pool:
                prepared = list(pool.map(prepare, infos))
        else:
            prepared = [prepare(info) for info in infos]
        tasks, failed = [], []
        for info, cut in zip(infos, prepared):
            if isinstance(cut, str):
                failed.append((info.clip_id, info.path, cut))
                continue
            clip_preds = preds.get(info.clip_id, [])
            offered = suggestions(clip_preds)
            choices = [o["alias"] for o in offered] + [NOISE, OTHER] if dynamic else labels
            if isinstance(cut, CutImage):
                tickable, offered = fenced_choices(clip_preds, offered, choices, geofence, info.country,
                                                   info.admin1_region)
                pred = build_prediction(info.clip_id, clip_preds, tickable, None, mv.name, interface,
                                        min_probability, box=cut.box, dynamic=dynamic)
                data = image_task_data(info, cut, document_root, show_source)
            else:
                pred = build_prediction(info.clip_id, clip_preds, choices, (cut.window_start, cut.window_end),
                                        mv.name, interface, min_probability, dynamic=dynamic)
                data = task_data(info, cut, document_root, show_source)
            data[SUGGESTIONS] = offered
            tasks.append({"data": data, "predictions": [pred]})
        return tasks, failed

    # ------------------------------------------------------------------ pull
    def pull(self, store: Store, project_id: int, *, overlap_s: float = 2.0) -> PullReport:
        """Bring the project's new, edited and deleted annotations into the store (incremental, rerunnable).

        Tasks updated after the stored watermark minus ``overlap_s`` are read (the overlap covers
        transactions that committed out of order); upserting is idempotent, so rereading is harmless.
        """
        with store.lock(LockName.ANNOTATION):
            return self._pull(store, project_id, overlap_s=overlap_s)

    def _pull(self, store: Store, project_id: int, *, overlap_s: float = 2.0) -> PullReport:
        project = self._project(project_id)
        allowed = set(species_labels(project.label_config))
        dynamic = has_taxonomy(project.label_config)
        label_set = self._label_set_of(store, project)
        vocabulary = (Vocabulary.of(store_vocabulary(store, label_set.labels if label_set else ()).labels,
                                    self._tree_names(project.label_config)) if dynamic else None)
        single = _asks_one(validate_config(project.label_config))
        watermark = store.watermark(int(project_id))
        watermark = _aware(watermark) if watermark is not None else None
        query = None
        if watermark is not None:
            since = (watermark - timedelta(seconds=overlap_s)).astimezone(timezone.utc)
            query = json.dumps({"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
                 "value": since.strftime(LS_TIME_FORMAT)}]}})
        report = PullReport(watermark=watermark)
        recorded = store.tasks(int(project_id))
        by_task = {t: c for c, t in recorded.items()}
        present = self._task_clips(int(project_id)) if recorded else {}
        self._check_same_project(int(project_id), recorded, present)
        with self._call(f"list the updated tasks of project {project_id}"):
            tasks = list(self.sdk.tasks.list(project=int(project_id), fields="all", query=query, page_size=100))
        if vocabulary is not None:  # two spellings of one new species in this pull: one class, whichever came first
            vocabulary = vocabulary.joined(name for t in tasks for a in _get(t, "annotations") or []
                                           if not _get(a, "was_cancelled")
                                           for name in typed_names(_get(a, "result") or []))
        newest = watermark
        new_names: list[str] = []
        for t in tasks:
            report.tasks_read += 1
            tid = int(_get(t, "id"))
            clip_id = by_task.get(tid)
            if clip_id is None:
                clip_id = self._adopt_task(store, int(project_id), tid, _get(t, "data") or {}, report)
                if clip_id is None:
                    continue
            keep, reasons = [], []
            for a in _get(t, "annotations") or []:
                ann = self._annotation(a, int(project_id), tid, clip_id, allowed, vocabulary, single)
                keep.append(ann.ls_annotation_id)
                outcome = store.upsert_annotation(ann)
                setattr(report, outcome, getattr(report, outcome) + 1)
                if ann.state == AnnotationState.ACTIVE:
                    new_names += ann.labels  # picked in the search or typed: the label set offers it next time
                    report.usable += outcome != "unchanged"
                elif ann.state == AnnotationState.REJECTED and ann.note != SKIPPED:
                    reasons.append(f"{ann.annotator or 'an annotator'}: {ann.note}")
                    if outcome != "unchanged":
                        report.rejected += 1
                        report.rejections.append((clip_id, tid, ann.annotator or "?", ann.note or ""))
                        report.problems.append(f"clip {clip_id}, annotation {ann.ls_annotation_id}: {ann.note}")
                elif outcome != "unchanged" and ann.state == AnnotationState.REJECTED:
                    report.skipped += 1
            report.deleted += store.mark_annotations_deleted(int(project_id), tid, keep)
            if dynamic:
                self._write_review(tid, _get(t, "data") or {}, reasons)
            updated = _aware(_get(t, "updated_at"))
            if updated is not None and (newest is None or updated > newest):
                newest = updated
        # tasks adopted above were just seen in Label Studio, so they cannot be among the deleted ones
        report.deleted += self._deleted_tasks(store, int(project_id), report, recorded, set(present))
        if newest is not None and newest != watermark:
            store.set_watermark(int(project_id), newest)
        report.watermark = newest
        if label_set is not None:
            # a set derived from the project's since (an earlier pull's new species) already offers its names
            newest = store.label_set()
            if newest is not None and set(label_set.labels) <= set(newest.labels):
                label_set = newest
            added = [x for x in dict.fromkeys(new_names) if x not in label_set.labels]
            if added:
                derived = derive_label_set(store, label_set, add=added)
                report.new_species, report.label_set = added, derived.name
                log.info("experts named %d species the label set lacked (%s): label set %r offers them",
                         len(added), ", ".join(added), derived.name)
        log.info("pulled project %s: %d task(s) read, %d new, %d updated, %d deleted, %d rejected, %d unchanged",
                 project_id, report.tasks_read, report.new, report.updated, report.deleted, report.rejected,
                 report.unchanged)
        return report

    def _tree_names(self, xml: str) -> list[str]:
        """Every name the project's species search offered (read from the tree Label Studio serves it from)."""
        m = re.search(r'apiUrl="([^"]+)"', xml)
        if not m:
            return []
        url = m.group(1).replace("&amp;", "&")
        if url not in self._trees:
            with self._call(f"read the project's species tree at {url}"):
                r = httpx.get(url, headers={"Authorization": f"Token {self.settings.token}"}, timeout=self.timeout)
            if r.status_code != 200:
                log.warning("the species tree %s answered %s: pulled answers are checked against the store's "
                            "names only", url, r.status_code)
                return []
            self._trees[url] = [n["alias"] for node in r.json() for n in [node, *node.get("children", [])]]
        return self._trees[url]

    def _write_review(self, task_id: int, data: dict, reasons: list[str]) -> None:
        """Tell the annotator in the task itself why a submission was not used (Community Edition has no
        comments API): the task's header shows it until the annotation is fixed, then it is cleared."""
        text = ("Not used by the workbench: " + "; ".join(reasons) + ". Fix the annotation and press Update."
                if reasons else "")
        if (data.get(REVIEW) or "") == text:
            return
        with self._call(f"write the review note of task {task_id}"):
            self.sdk.tasks.update(id=task_id, data={**data, REVIEW: text})

    def _task_clips(self, project_id: int) -> dict[int, Optional[int]]:
        """task id -> the clip id its data names (None: a task the workbench did not push) of every task."""
        out: dict[int, Optional[int]] = {}
        for tid, data in self._listed_tasks(project_id):
            try:
                out[tid] = int(data["clip_id"]) if data.get("clip_id") is not None else None
            except (TypeError, ValueError):
                out[tid] = None
        return out

    def _check_same_project(self, project_id: int, recorded: dict[int, int], present: dict[int, Optional[int]]) -> None:
        """Refuse a project whose tasks are not the ones this store pushed (a Label Studio reset or another
        server at the URL reuses task and annotation ids): read as ours, its answers would land on other clips
        and overwrite stored annotations with the same ids."""
        wrong = [(tid, clip, present[tid]) for clip, tid in recorded.items()
                 if present.get(tid) is not None and present[tid] != clip]
        if wrong:
            tid, ours, theirs = wrong[0]
            raise AnnotationError(
                f"project {project_id} at {self.settings.url} is not the one this workspace pushed to: its task {tid} "
                f"holds clip {theirs}, but this workspace pushed task {tid} for clip {ours} ({len(wrong)} task(s) "
                f"disagree). The Label Studio server was reset, or another one answers at this URL; nothing was "
                f"pulled or pushed: point LABEL_STUDIO_URL at the server that holds this workspace's tasks")

    def _deleted_tasks(self, store: Ledger, project_id: int, report: PullReport, recorded: dict[int, int],
                       present: set[int]) -> int:
        """Annotations of tasks deleted in Label Studio (a deleted task never shows up as updated)."""
        if not recorded:
            return 0
        gone = 0
        for clip_id, tid in recorded.items():
            if tid not in present:
                n = store.mark_annotations_deleted(project_id, tid, keep=())
                if n:
                    report.problems.append(f"task {tid} (clip {clip_id}) was deleted in Label Studio: its "
                                           f"{n} annotation(s) are marked deleted")
                gone += n
        return gone

    @staticmethod
    def _adopt_task(store: Store, project_id: int, task_id: int, data: dict, report: PullReport) -> Optional[int]:
        """Clip id of a task the store has not recorded (a push that crashed after the import), recording it."""
        raw = data.get("clip_id")
        try:
            clip_id = int(raw)
        except (TypeError, ValueError):
            report.problems.append(f"task {task_id} has no usable data.clip_id ({raw!r}): not pushed by the "
                                   f"workbench; ignored")
            return None
        try:
            store.clips([clip_id])
        except StoreError as e:
            report.problems.append(f"task {task_id} names clip {clip_id}, which this store lacks ({e}): pushed "
                                   f"from another workspace? ignored")
            return None
        store.add_tasks([Task(project_id=project_id, clip_id=clip_id, ls_task_id=task_id)])
        return clip_id

    def _annotation(self, a: Any, project_id: int, task_id: int, clip_id: int, allowed: set[str],
                    vocabulary: Optional[Vocabulary] = None, single: bool = False) -> Annotation:
        """The stored form of one Label Studio annotation (see ``read_answer``)."""
        answer = read_answer(_get(a, "result") or [], was_cancelled=bool(_get(a, "was_cancelled")),
                             vocabulary=vocabulary, allowed=allowed, single=single)
        lead = _get(a, "lead_time")
        ann = Annotation(clip_id=int(clip_id), project_id=project_id, ls_task_id=task_id,
                         ls_annotation_id=int(_get(a, "id")), labels=answer.labels,
                         annotator=self._annotator(_get(a, "completed_by")),
                         created_at=_aware(_get(a, "created_at")), updated_at=_aware(_get(a, "updated_at")),
                         state=answer.state.value, note=answer.note, region=answer.region,
                         lead_time=float(lead) if lead is not None else None,
                         ground_truth=bool(_get(a, "ground_truth")))
        return ann

    def _annotator(self, completed_by: Any) -> Optional[str]:
        """The annotator's email (cached per user id)."""
        if completed_by is None:
            return None
        if isinstance(completed_by, dict):
            return completed_by.get("email") or str(completed_by.get("id"))
        uid = int(completed_by)
        if uid not in self._users:
            try:
                with self._call(f"read user {uid}"):
                    self._users[uid] = str(self.sdk.users.get(id=uid).email)
            except AnnotationServerError as e:
                log.warning("cannot resolve Label Studio user %s (%s); storing the user id", uid, e)
                self._users[uid] = f"user:{uid}"
        return self._users[uid]

    def __repr__(self) -> str:
        return f"LabelStudioClient(url={self.settings.url!r}, token=***)"


def _when(info: ClipInfo) -> str:
    if info.start_time is None:
        return "time unknown"
    offset = timedelta(seconds=float(info.start_s)) if info.modality == Modality.AUDIO else timedelta(0)
    return (info.start_time + offset).isoformat(sep=" ", timespec="seconds")


SOURCE_FIELDS = ("file", "site", "time")  # in task data only with show_source: file names often name species


def title_of(info: ClipInfo, show_source: bool = False) -> str:
    """A task's header: the clip number only (experts judge the sound, not a file name that may name the
    species, nor a site where they expect it), or with ``show_source`` the file, site and time too."""
    if not show_source:
        return f"Clip {int(info.clip_id)}"
    return f"Clip {int(info.clip_id)}: {Path(info.path).name} (site {info.site or 'unknown'}, {_when(info)})"


def _common_data(info: ClipInfo, show_source: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"clip_id": int(info.clip_id), TITLE: title_of(info, show_source), REVIEW: ""}
    if show_source:
        data.update({"site": info.site or "unknown", "time": _when(info), "file": Path(info.path).name})
    return data


def image_task_data(info: ClipInfo, cut: CutImage, document_root: Path, show_source: bool = False) -> dict[str, Any]:
    """An image task's data: the clip's URL under the local-files root, its frame for a crop (as an image URL
    and as HTML, empty for a whole-frame clip, so it is not shown twice), and the header."""
    root = Path(document_root).resolve()
    url = lambda p: "/data/local-files/?d=" + p.resolve().relative_to(root).as_posix()  # noqa: E731
    crop = cut.path.resolve() != cut.frame_path.resolve()
    frame_html = (f'<img src="{url(cut.frame_path)}" style="max-width:720px" alt="the frame of the crop"/>'
                  if crop else "")
    return {IMAGE: url(cut.path), FRAME: url(cut.frame_path), f"{FRAME}_html": frame_html, "frame_note": cut.note,
            **_common_data(info, show_source)}


def task_data(info: ClipInfo, cut: CutClip, document_root: Path, show_source: bool = False) -> dict[str, Any]:
    """The task's data: the clip's and its spectrogram's URLs Label Studio serves from its local-files root,
    and what the header shows."""
    from annotation.spectrogram import spectrogram_path

    root = Path(document_root).resolve()
    rel = cut.path.resolve().relative_to(root).as_posix()
    image = spectrogram_path(cut.path).resolve().relative_to(root).as_posix()
    return {AUDIO: f"/data/local-files/?d={rel}", SPECTROGRAM: f"/data/local-files/?d={image}",
            "window_start": round(cut.window_start, 3), "window_end": round(cut.window_end, 3),
            **_common_data(info, show_source)}


def overlap_share(clip_ids: Sequence[int], share: float, random_state: Optional[int], run_id: int) -> list[int]:
    """The seeded ``share`` of ``clip_ids`` (rounded up when positive) that two experts label."""
    import numpy as np

    if share <= 0 or not clip_ids:
        return []
    n = min(len(clip_ids), int(np.ceil(share * len(clip_ids))))
    rng = np.random.default_rng(None if random_state is None else [int(random_state), int(run_id)])
    return sorted(int(x) for x in rng.choice(np.asarray(clip_ids, dtype=np.int64), size=n, replace=False))
