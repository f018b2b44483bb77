"""LabelStudioClient against a real Label Studio: project, push (idempotent), pull (incremental), failures."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest

from annotation.client import LabelStudioClient
from annotation.config import label_config
from annotation.errors import AnnotationError, AnnotationServerError
from store import SamplingRun, Selection
from tests.annotation.conftest import MODEL, SPECIES, generate, write_tone
from workbench.config import LabelStudioSettings

pytestmark = pytest.mark.labelstudio

LABELS = SPECIES[:5] + ["Other", "Noise"]  # the wood-pigeon (SPECIES[5]) is left out on purpose


def setup_project(client, store, labelstudio, tmp_path, n_clips=6):
    gen = generate(store, tmp_path, n_clips=n_clips, seed=uuid.uuid4().int % 1000)
    label_set = store.add_label_set(f"test-{uuid.uuid4().hex[:8]}", LABELS)
    pid = client.ensure_project(label_set, title=f"test {label_set.name}", clips_dir=labelstudio.workspace.clips)
    return gen, label_set, pid


def tasks_of(client, pid):
    return list(client.sdk.tasks.list(project=pid, fields="all"))


def choice(*labels):
    return [{"from_name": "species", "to_name": "audio", "type": "choices", "value": {"choices": list(labels)}}]


def test_ensure_project_creates_then_reuses(ls_client, ls_store, labelstudio, tmp_path):
    _, label_set, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    assert ls_client.ensure_project(label_set, title=f"test {label_set.name}") == pid
    project = ls_client.sdk.projects.get(id=pid)
    assert project.label_config == label_config(LABELS)
    assert f"workbench label set: {label_set.name}" in project.description
    storages = list(ls_client.sdk.import_storage.local.list(project=pid))
    assert [s.path for s in storages] == [str(labelstudio.workspace.clips.resolve())]
    ls_client.ensure_storage(pid, labelstudio.workspace.clips)  # idempotent
    assert len(list(ls_client.sdk.import_storage.local.list(project=pid))) == 1
    # default title from the label set's name
    default = ls_client.ensure_project(label_set)
    assert ls_client.sdk.projects.get(id=default).title == f"Workbench: {label_set.name}"


def test_push_creates_tasks_with_preannotations_once(ls_client, ls_store, labelstudio, tmp_path):
    gen, label_set, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert (report.created, report.skipped) == (6, 0)
    tasks = tasks_of(ls_client, pid)
    assert sorted(t.data["clip_id"] for t in tasks) == sorted(gen.clip_ids)
    assert ls_store.tasks(pid) == {t.data["clip_id"]: t.id for t in tasks} == report.task_ids
    for t in tasks:
        clip = t.data["clip_id"]
        assert t.data["audio"] == f"/data/local-files/?d=clips/clip-{clip}.wav"
        assert (labelstudio.workspace.clips / f"clip-{clip}.wav").exists()
        assert t.data["title"] == f"Clip {clip}" and not {"site", "file", "time"} & set(t.data)  # blind
        assert t.data["stream"] == "active learning"  # an audit run's tasks say "audit"
        [pred] = t.predictions
        assert pred.model_version == MODEL and pred.score == pytest.approx(0.6)
        by_name = {r["from_name"]: r for r in pred.result}
        ticked = by_name["species"]["value"]["choices"]
        assert set(ticked) <= set(LABELS)
        top = gen.top[clip]
        second = SPECIES[(SPECIES.index(top) + 1) % len(SPECIES)]
        assert ticked == [x for x in (top, second) if x in LABELS]  # p >= 0.1 and in the label set
        window = by_name["window"]["value"]
        assert (window["start"], window["end"]) == (t.data["window_start"], t.data["window_end"])
        assert window["labels"] == ["window"] and window["end"] - window["start"] == pytest.approx(3.0)
    # the wood-pigeon clip: its top label is outside the set, so only its second species is ticked
    pigeon = [c for c in gen.clip_ids if gen.top[c] == SPECIES[5]]
    assert pigeon
    # pushing the same selection again creates nothing
    again = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert (again.created, again.skipped) == (0, 6)
    assert len(tasks_of(ls_client, pid)) == 6
    # the last sampling run is the default (a new run of 2 more clips)
    more = generate(ls_store, tmp_path, n_clips=2, seed=99)
    last = ls_client.push(ls_store, labelstudio.workspace.clips, pid)
    assert (last.created, last.run_id) == (2, more.run_id) and len(tasks_of(ls_client, pid)) == 8


def test_push_after_a_crash_between_import_and_record_creates_no_duplicates(
        ls_client, ls_store, labelstudio, tmp_path, monkeypatch):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)

    def crash(tasks):
        raise RuntimeError("simulated crash after the import")

    monkeypatch.setattr(ls_store, "add_tasks", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    monkeypatch.undo()
    assert len(tasks_of(ls_client, pid)) == 6 and ls_store.tasks(pid) == {}
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert (report.created, report.skipped) == (0, 6)
    tasks = tasks_of(ls_client, pid)
    assert len(tasks) == 6
    assert ls_store.tasks(pid) == {t.data["clip_id"]: t.id for t in tasks}


def test_push_killed_before_asking_two_experts_asks_them_when_run_again(
        ls_client, ls_store, labelstudio, tmp_path, monkeypatch):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    calls = []

    def killed(**kw):
        calls.append(kw)
        raise KeyboardInterrupt  # the push is killed between the import and the overlap it asks for

    with monkeypatch.context() as m:
        m.setattr(ls_client.sdk.tasks, "update", killed)
        with pytest.raises(KeyboardInterrupt):
            ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id, overlap=0.5)
    assert calls and ls_store.tasks(pid) == {} and {t.overlap for t in tasks_of(ls_client, pid)} == {1}
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id, overlap=0.5)
    assert (report.created, report.skipped) == (0, 6)
    twice = {t.data["clip_id"] for t in tasks_of(ls_client, pid) if t.overlap == 2}
    assert len(twice) == 3  # half of the 6 tasks: those the killed push was asking for
    assert calls[0]["id"] in {t.id for t in tasks_of(ls_client, pid) if t.overlap == 2}
    from sqlmodel import select

    from store.schema import Task
    with ls_store._session() as s:  # noqa: SLF001 - reading what the store recorded
        recorded = {t.clip_id: t.overlap for t in s.execute(select(Task).where(Task.project_id == pid)).scalars()}
    assert {c for c, o in recorded.items() if o == 2} == twice and len(recorded) == 6


def test_a_clip_whose_source_vanished_is_reported_and_pushed_once_it_is_back(ls_client, ls_store, labelstudio,
                                                                             tmp_path):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path, n_clips=3)
    other = generate(ls_store, tmp_path, n_clips=2, seed=uuid.uuid4().int % 1000)  # a second recording
    run = ls_store.add_sampling_run(SamplingRun(strategy="test", params={}, seed=0, budget=5),
                                    [Selection(clip_id=c, rank=r + 1, score=1.0, reason="test")
                                     for r, c in enumerate(gen.clip_ids + other.clip_ids)])
    hidden = other.audio.with_name(other.audio.name + ".away")
    other.audio.rename(hidden)  # the second recording's file vanished between sampling and push
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=run.id)
    assert (report.created, report.skipped) == (3, 0)
    assert sorted(c for c, _, _ in report.failed) == sorted(other.clip_ids)
    assert all(path == str(other.audio) and "is missing" in reason and other.audio.name in reason
               for _, path, reason in report.failed)
    assert sorted(t.data["clip_id"] for t in tasks_of(ls_client, pid)) == sorted(gen.clip_ids)
    hidden.rename(other.audio)  # back in place: the next push sends exactly the two that were left
    again = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=run.id)
    assert (again.created, again.skipped, again.failed) == (2, 3, [])
    tasks = tasks_of(ls_client, pid)
    assert sorted(t.data["clip_id"] for t in tasks) == sorted(gen.clip_ids + other.clip_ids)
    assert ls_store.tasks(pid) == {t.data["clip_id"]: t.id for t in tasks}


def test_a_clip_whose_source_changed_is_not_pushed(ls_client, ls_store, labelstudio, tmp_path):
    """Labels attach to windows embedded from the content ingested: never send annotators other audio."""
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path, n_clips=2)
    write_tone(gen.audio, 7.0, sr=22050, seed=123)  # replaced in place, same name
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert report.created == 0 and len(report.failed) == 2
    assert all("changed since it was ingested" in reason for _, _, reason in report.failed)
    assert tasks_of(ls_client, pid) == [] and not any(
        (labelstudio.workspace.clips / f"clip-{c}.wav").exists() for c in gen.clip_ids)


def test_clip_audio_is_served_by_label_studio(ls_client, ls_store, labelstudio, tmp_path):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path, n_clips=1)
    ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    [task] = tasks_of(ls_client, pid)
    r = httpx.get(labelstudio.url + task.data["audio"], headers={"Authorization": f"Token {labelstudio.token}"})
    assert r.status_code == 200
    assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WAVE"
    assert r.content == (labelstudio.workspace.clips / f"clip-{gen.clip_ids[0]}.wav").read_bytes()


def test_workspace_below_the_document_root_of_an_external_server(ls_client, labelstudio, tmp_path, monkeypatch):
    """LABEL_STUDIO_DOCUMENT_ROOT names another server's root: clip URLs are relative to it."""
    from workbench.config import Workspace

    ws = Workspace.resolve(labelstudio.workspace.media / f"nested-{uuid.uuid4().hex[:6]}")
    store = ws.open_store()
    try:
        gen = generate(store, tmp_path, n_clips=1)
        label_set = store.add_label_set("nested", LABELS)
        monkeypatch.setenv("LABEL_STUDIO_DOCUMENT_ROOT", str(labelstudio.workspace.media))
        pid = ls_client.ensure_project(label_set, title=f"test nested {ws.root.name}", clips_dir=ws.clips)
        ls_client.push(store, ws.clips, pid, run_id=gen.run_id)
        [task] = tasks_of(ls_client, pid)
        assert task.data["audio"] == f"/data/local-files/?d={ws.root.name}/media/clips/clip-{gen.clip_ids[0]}.wav"
        r = httpx.get(labelstudio.url + task.data["audio"], headers={"Authorization": f"Token {labelstudio.token}"})
        assert r.status_code == 200 and r.content[:4] == b"RIFF"
        # a workspace outside the root is refused before anything is sent
        monkeypatch.setenv("LABEL_STUDIO_DOCUMENT_ROOT", str(tmp_path / "elsewhere"))
        with pytest.raises(AnnotationError, match="not below Label Studio's document root"):
            ls_client.push(store, ws.clips, pid, run_id=gen.run_id)
    finally:
        store.close()


def test_annotate_pull_edit_delete_pull(ls_client, ls_store, labelstudio, tmp_path):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    task_ids = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id).task_ids
    c1, c2, c3, c4 = gen.clip_ids[:4]
    sdk = ls_client.sdk
    a1 = sdk.annotations.create(id=task_ids[c1], result=choice(SPECIES[0]), lead_time=4.0)
    a2 = sdk.annotations.create(id=task_ids[c2], result=choice(SPECIES[1], "Noise"), lead_time=3.0)
    a3 = sdk.annotations.create(id=task_ids[c3], result=choice("Bogus bogus_Not In The Set", SPECIES[2]))
    sdk.annotations.create(id=task_ids[c4], result=[], was_cancelled=True)

    r = ls_client.pull(ls_store, pid)
    assert (r.new, r.updated, r.deleted, r.rejected, r.skipped) == (4, 0, 0, 1, 1)
    assert any("Bogus bogus_Not In The Set" in p and f"clip {c3}" in p for p in r.problems)
    mine = {a.ls_annotation_id: a for a in ls_store.annotations(state=None) if a.project_id == pid}
    assert mine[a1.id].labels == [SPECIES[0]] and mine[a1.id].state == "active" and mine[a1.id].clip_id == c1
    assert mine[a2.id].labels == [SPECIES[1], "Noise"] and mine[a2.id].state == "active"
    assert mine[a3.id].state == "rejected" and "Bogus bogus_Not In The Set" in mine[a3.id].note
    assert mine[a3.id].labels == ["Bogus bogus_Not In The Set", SPECIES[2]]  # nothing lost
    assert mine[a1.id].annotator == labelstudio.settings.username
    assert mine[a1.id].updated_at.tzinfo is not None and mine[a1.id].created_at.utcoffset().total_seconds() == 0
    watermark = ls_store.watermark(pid)
    assert watermark is not None and watermark.tzinfo is not None

    # nothing changed: rereading the overlap is harmless
    r = ls_client.pull(ls_store, pid)
    assert (r.new, r.updated, r.deleted, r.rejected) == (0, 0, 0, 0)

    sdk.annotations.update(id=a1.id, result=choice(SPECIES[2], SPECIES[3]))
    sdk.annotations.delete(id=a2.id)
    r = ls_client.pull(ls_store, pid)
    assert (r.new, r.updated, r.deleted, r.rejected) == (0, 1, 1, 0)
    mine = {a.ls_annotation_id: a for a in ls_store.annotations(state=None) if a.project_id == pid}
    assert mine[a1.id].labels == [SPECIES[2], SPECIES[3]] and mine[a1.id].state == "active"
    assert mine[a2.id].state == "deleted"
    assert ls_store.watermark(pid) > watermark

    # a correction of the rejected annotation makes it usable
    sdk.annotations.update(id=a3.id, result=choice(SPECIES[2]))
    r = ls_client.pull(ls_store, pid)
    assert (r.updated, r.rejected) == (1, 0)
    fixed = [a for a in ls_store.annotations() if a.project_id == pid and a.ls_annotation_id == a3.id]
    assert fixed and fixed[0].labels == [SPECIES[2]] and fixed[0].note is None

    # a task deleted in Label Studio takes its annotations with it
    sdk.tasks.delete(id=task_ids[c3])
    r = ls_client.pull(ls_store, pid)
    assert r.deleted == 1 and any(f"clip {c3}" in p and "deleted" in p for p in r.problems)
    gone = [a for a in ls_store.annotations(state=None) if a.project_id == pid and a.ls_annotation_id == a3.id]
    assert gone[0].state == "deleted"
    assert ls_client.pull(ls_store, pid).deleted == 0
    # and is not pushed again
    assert ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id).created == 0


def test_a_project_whose_tasks_are_not_the_ones_pushed_is_refused_and_nothing_changes(ls_client, ls_store,
                                                                                         labelstudio, tmp_path):
    """A Label Studio reset (or another server at the URL) reuses task and annotation ids: read as this store's,
    its answers would land on other clips and overwrite stored annotations. Pull refuses before writing."""
    from store import Task

    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    task_ids = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id).task_ids
    c1, c2 = gen.clip_ids[:2]
    ls_client.sdk.annotations.create(id=task_ids[c1], result=choice(SPECIES[0]))
    assert ls_client.pull(ls_store, pid).new == 1
    before = sorted((a.clip_id, a.ls_annotation_id, tuple(a.labels), a.state) for a in ls_store.annotations(state=None))
    watermark = ls_store.watermark(pid)
    with ls_store.engine.begin() as conn:  # the store's record of the two tasks, as another server numbered them
        conn.exec_driver_sql(f"DELETE FROM task WHERE project_id = {pid} AND clip_id IN ({c1}, {c2})")
    ls_store.add_tasks([Task(project_id=pid, clip_id=c1, ls_task_id=task_ids[c2]),
                        Task(project_id=pid, clip_id=c2, ls_task_id=task_ids[c1])])
    ls_client.sdk.annotations.create(id=task_ids[c2], result=choice(SPECIES[1]))
    with pytest.raises(AnnotationError, match=rf"project {pid} at .* is not the one this workspace pushed to: its "
                                              rf"task \d+ holds clip \d+, but this workspace pushed task \d+ for clip "
                                              rf"\d+ \(2 task\(s\) disagree\).*nothing was pulled or pushed"):
        ls_client.pull(ls_store, pid)
    after = sorted((a.clip_id, a.ls_annotation_id, tuple(a.labels), a.state) for a in ls_store.annotations(state=None))
    assert after == before and ls_store.watermark(pid) == watermark
    n_tasks = len(tasks_of(ls_client, pid))
    with pytest.raises(AnnotationError, match="is not the one this workspace pushed to"):  # nor pushed into
        ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert len(tasks_of(ls_client, pid)) == n_tasks


def test_two_spellings_of_one_new_species_in_one_pull_become_one_class(ls_client, ls_store, labelstudio, tmp_path):
    """"Any spelling" holds among the names new in the same pull too, whichever answer Label Studio lists first."""
    from annotation.vocabulary import Vocabulary

    gen = generate(ls_store, tmp_path, n_clips=5, seed=uuid.uuid4().int % 1000)
    label_set = ls_store.add_label_set(f"typed-{uuid.uuid4().hex[:8]}", LABELS)
    pid = ls_client.ensure_project(label_set, title=f"typed {label_set.name}", clips_dir=labelstudio.workspace.clips,
                                   vocabulary=Vocabulary.of(LABELS, SPECIES))
    task_ids = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id).task_ids
    warbler, civet = "Xus yus_Made-up Warbler", "Paradoxurus hermaphroditus_Asian Palm Civet"
    typed = [warbler, "made-up warbler", "asian palm civet", civet]  # the civet's bare name first
    for clip, text in zip(gen.clip_ids, typed):
        ls_client.sdk.annotations.create(id=task_ids[clip], result=choice("Other") + [
            {"from_name": "new_species", "to_name": "audio", "type": "textarea", "value": {"text": [text]}}])
    r = ls_client.pull(ls_store, pid)
    assert (r.new, r.usable) == (4, 4), r.problems
    assert r.new_species == [warbler, civet]
    stored = {a.clip_id: a.labels for a in ls_store.annotations() if a.project_id == pid}
    assert [stored[c] for c in gen.clip_ids[:4]] == [[warbler], [warbler], [civet], [civet]]
    derived = ls_store.label_set(r.label_set).labels
    assert warbler in derived and civet in derived and "made-up warbler" not in derived
    assert "asian palm civet" not in derived
    # a later pull maps another spelling onto the same class, and rereading changes nothing
    ls_client.sdk.annotations.create(id=task_ids[gen.clip_ids[4]], result=choice("Other") + [
        {"from_name": "new_species", "to_name": "audio", "type": "textarea", "value": {"text": ["Xus yus"]}}])
    again = ls_client.pull(ls_store, pid)
    assert (again.new, again.updated, again.new_species) == (1, 0, [])  # not announced again before a push
    assert {warbler, civet} <= set(ls_store.label_set().labels)  # the newest set still offers both
    assert [a.labels for a in ls_store.annotations() if a.ls_task_id == task_ids[gen.clip_ids[4]]] == [[warbler]]


def test_push_refuses_a_preannotation_outside_the_edited_config(ls_client, ls_store, labelstudio, tmp_path):
    gen, _, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    # someone removed the first three species from the project's config in Label Studio
    ls_client.sdk.projects.update(id=pid, label_config=label_config(LABELS[3:]))
    with pytest.raises(AnnotationError, match=r"clip \d+: label '.+' is not a choice of the project's label config"):
        ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert tasks_of(ls_client, pid) == []  # validated before anything was imported


def test_server_down_names_the_url_and_how_to_start_it(labelstudio):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = LabelStudioClient(LabelStudioSettings(url=url, token=labelstudio.token, username="x", password="y"),
                               timeout=5, max_retries=0)
    with pytest.raises(AnnotationServerError, match=rf"cannot reach Label Studio at {url}.*workbench serve"):
        client.check()


def test_wrong_token_is_reported_without_the_token(labelstudio):
    wrong = "wrong" + uuid.uuid4().hex
    client = LabelStudioClient(LabelStudioSettings(url=labelstudio.url, token=wrong, username="x", password="y"))
    with pytest.raises(AnnotationServerError) as e:
        client.check()
    msg = str(e.value)
    assert "401" in msg and "token" in msg and "LABEL_STUDIO_API_KEY" in msg and labelstudio.url in msg
    assert wrong not in msg and labelstudio.token not in msg
    assert wrong not in repr(client)


def test_check_returns_the_user(ls_client, labelstudio):
    assert ls_client.check() == labelstudio.settings.username


def test_clips_and_spectrograms_are_made_once_for_every_project(ls_client, ls_store, labelstudio, tmp_path):
    gen, label_set, pid = setup_project(ls_client, ls_store, labelstudio, tmp_path)
    assert ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id).created == 6
    made = {p: p.stat().st_mtime_ns for c in gen.clip_ids
            for p in (labelstudio.workspace.clips / f"clip-{c}.wav", labelstudio.workspace.clips / f"clip-{c}.png")}
    other = ls_client.ensure_project(label_set, title=f"second {label_set.name}", clips_dir=labelstudio.workspace.clips)
    assert ls_client.push(ls_store, labelstudio.workspace.clips, other, run_id=gen.run_id).created == 6
    assert {p: p.stat().st_mtime_ns for p in made} == made  # reused, not cut or drawn again
