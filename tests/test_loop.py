"""The whole active-learning round through the CLI, on real parts.

Real BirdNET on real labelled clips, a real Label Studio server (one per test session), an annotator
working through the API, edits and deletions pulled back, a head fine-tuned, the pool re-scored.
"""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import shared_path
from workbench.cli import main

SHRIKE = "Lanius collurio_Red-backed Shrike"
WRYNECK = "Jynx torquilla_Eurasian Wryneck"
TRUTH = {"birdnet_testdata_s1": SHRIKE, "birdnet_testdata_s2": WRYNECK, "avianz_noise": "Noise"}


@pytest.fixture
def loop_env(served_workspace, labelstudio, tmp_path):
    """A workspace whose clips the session's Label Studio serves, and a small real data set."""
    clips = shared_path("audio", "labeled_clips")
    data = tmp_path / "audio"
    for folder, n in (("birdnet_testdata_s1", 6), ("birdnet_testdata_s2", 6), ("avianz_noise", 8)):
        (data / folder).mkdir(parents=True)
        for src in sorted((clips / folder).glob("*.wav"))[:n]:
            shutil.copy(src, data / folder / src.name)
    return served_workspace, data, labelstudio


def test_one_full_round(loop_env, capsys):
    ws, data, ls = loop_env
    project = f"loop test {ws.root.name}"

    assert main(["ingest", str(data)]) == 0
    assert main(["ingest", str(data)]) == 0  # idempotent
    assert "skipped 20 already stored" in capsys.readouterr().out
    store = ws.open_store()
    before = store.pool()
    durations = [sf.info(str(f)).duration for f in data.rglob("*.wav")]
    assert len(before) == sum(int(d // 3) + (d % 3 >= 1.0) for d in durations)  # last partial window padded

    store.add_label_set("loop", [SHRIKE, WRYNECK, "Other", "Noise"])
    # hard equal quotas per site (the default's balance is a soft target: tests/sampler/test_cli.py)
    assert main(["sample", "--budget", "15", "--seed", "3", "--strategy", "uncertain_diverse", "--strata", "site"]) == 0
    run = store.last_sampling_run()
    picks = store.selections(run.id)
    assert len(picks) == 15 and all(p.reason for p in picks)
    per_site = Counter(store.clips([p.clip_id])[0].site for p in picks)
    assert per_site == {site: 5 for site in TRUTH}  # equal quotas per site

    assert main(["push", "--project", project, "--label-set", "loop"]) == 0
    assert main(["push", "--project", project, "--label-set", "loop"]) == 0
    out = capsys.readouterr().out
    assert "15 new task(s)" in out and "0 new task(s), 15 already there" in out

    # the annotator labels every task in Label Studio
    from annotation.client import LabelStudioClient
    from workbench.config import labelstudio_settings

    sdk = LabelStudioClient(labelstudio_settings(ws)).sdk
    [pid] = [p.id for p in sdk.projects.list() if p.title == project]
    tasks = list(sdk.tasks.list(project=pid, fields="all"))
    assert len(tasks) == 15 and all(t.predictions for t in tasks)  # BirdNET pre-annotations
    import httpx

    for key in ("audio", "spectrogram"):  # what the annotator hears and sees is served
        r = httpx.get(ls.url + tasks[0].data[key], headers={"Authorization": f"Token {ls.token}"})
        assert r.status_code == 200, (key, tasks[0].data[key])
    ann_ids = {}
    for t in tasks:
        site = store.clips([t.data["clip_id"]])[0].site
        result = [{"from_name": "species", "to_name": "audio", "type": "choices",
                   "value": {"choices": [TRUTH[site]]}}]
        ann_ids[t.id] = sdk.annotations.create(id=t.id, result=result, lead_time=4.2).id
    assert main(["pull", "--project", project, "--label-set", "loop"]) == 0
    assert "15 new" in capsys.readouterr().out
    assert len(store.annotations()) == 15

    # an edit and a deletion reach the store on the next (incremental) pull
    noise_tasks = [t for t in tasks if store.clips([t.data["clip_id"]])[0].site == "avianz_noise"]
    edited, deleted = noise_tasks[0], noise_tasks[1]
    toad = "Anaxyrus cognatus_Great Plains Toad"  # not in the label set: the expert finds it in the search
    sdk.annotations.update(id=ann_ids[edited.id], result=[
        {"from_name": "species", "to_name": "audio", "type": "choices", "value": {"choices": ["Other"]}},
        {"from_name": "taxon", "to_name": "audio", "type": "taxonomy", "value": {"taxonomy": [["Anaxyrus sp.", toad]]}}])
    sdk.annotations.delete(id=ann_ids[deleted.id])
    assert main(["pull", "--project", project, "--label-set", "loop"]) == 0
    out = capsys.readouterr().out
    assert "0 new, 1 updated (1 usable, 0 rejected, 0 skipped), 1 deleted" in out
    active = {a.ls_task_id: a.labels for a in store.annotations()}
    assert active[edited.id] == [toad] and deleted.id not in active and len(active) == 14

    assert main(["finetune", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "macro recall" in out
    head = store.current_model_version()
    assert head.kind == "classifier" and head.metrics["n_train"] + head.metrics["n_test"] == 14
    after = store.pool()
    assert len(after) == len(before) and after.model_version.id == head.id
    assert not np.allclose(after.max_entropy, before.max_entropy)
    # the head tells the two species apart on windows nobody labelled
    unlabelled = ~np.isin(after.clip_id, [p.clip_id for p in picks])
    sites = np.array([c.site for c in store.clips(after.clip_id)])
    for site in ("birdnet_testdata_s1", "birdnet_testdata_s2"):
        mask = unlabelled & (sites == site)
        agree = np.mean(after.top_label[mask] == TRUTH[site])
        assert agree >= 0.7, f"{site}: the head says {TRUTH[site]} on only {agree:.0%} of its unlabelled windows"

    # the next round samples from the re-scored pool and never re-picks a clip
    assert main(["sample", "--budget", "5", "--seed", "3"]) == 0
    second = store.selections(store.last_sampling_run().id)
    assert not {p.clip_id for p in second} & {p.clip_id for p in picks}
    assert store.last_sampling_run().model_version_id == head.id
    assert main(["status"]) == 0
    assert "annotations        14" in capsys.readouterr().out
