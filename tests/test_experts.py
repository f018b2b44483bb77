"""The expert channel through the CLI on real parts: real BirdNET on real recordings, a real Label Studio,
two experts (the second signed up through the invite link), rejections written back, new species named,
agreement measured, fine-tuning on one answer per clip, and round-2 pre-annotations an expert can trust.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.conftest import shared_path
from workbench.cli import main

TOAD = "Anaxyrus cognatus_Great Plains Toad"
SHRIKE = "Lanius collurio_Red-backed Shrike"
WRYNECK = "Jynx torquilla_Eurasian Wryneck"
TRUTH = {"s1": SHRIKE, "s2": WRYNECK, "noise": "Noise"}


def ticks(*labels):
    return {"from_name": "species", "to_name": "audio", "type": "choices", "value": {"choices": list(labels)}}


def searched(*paths):
    return {"from_name": "taxon", "to_name": "audio", "type": "taxonomy", "value": {"taxonomy": [list(p) for p in paths]}}


def answer_for(site: str) -> list[dict]:
    """What a careful expert submits: the species heard; the toad (which the model never offers) by search."""
    if site == "prairie":
        return [ticks("Other"), searched(["Anaxyrus sp.", TOAD])]
    return [ticks(TRUTH[site])]


def sign_up(url: str, invite: str, email: str, password: str) -> httpx.Client:
    """A second expert joins through the invite link, as a person would, and works through their session."""
    web = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    web.get(invite)
    r = web.post(invite, data={"email": email, "password": password,
                               "csrfmiddlewaretoken": web.cookies.get("csrftoken", "")})
    assert r.status_code == 200 and web.get("/api/current-user/whoami").json()["email"] == email
    web.headers.update({"X-CSRFToken": web.cookies.get("csrftoken", ""), "Referer": url})
    return web


@pytest.fixture
def expert_env(served_workspace, labelstudio, tmp_path):
    clips = shared_path("audio", "labeled_clips")
    toad = shared_path("audio", "recordings", "opensoundscape_great_plains_toad.wav")
    data = tmp_path / "audio"
    for folder, src, n in (("s1", "birdnet_testdata_s1", 5), ("s2", "birdnet_testdata_s2", 5),
                           ("noise", "avianz_noise", 5)):
        (data / folder).mkdir(parents=True)
        for f in sorted((clips / src).glob("*.wav"))[:n]:
            shutil.copy(f, data / folder / f.name)
    (data / "prairie").mkdir()
    shutil.copy(toad, data / "prairie" / "toad.wav")
    return served_workspace, data, labelstudio


def kappa(a: list[int], b: list[int]) -> float:
    """Cohen's kappa by hand: (observed - chance) / (1 - chance)."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return (po - pe) / (1 - pe)


def test_experts_name_any_species_disagree_and_train_one_answer(expert_env, capsys):
    ws, data, ls = expert_env
    project = f"experts {ws.root.name}"
    assert main(["ingest", str(data)]) == 0
    store = ws.open_store()
    pool = store.pool()
    assert TOAD not in set(pool.top_label[pool.top1 >= 0.5])  # the label set drawn from the pool lacks it

    capsys.readouterr()
    assert main(["labels", "--find", "Anaxyrus cognatus"]) == 0
    out = capsys.readouterr().out
    assert TOAD not in out.split("annotators also search")[0]  # not in the short label set ...
    assert "6,52" in out and TOAD in out  # ... but among the 6,522 names annotators search

    assert main(["sample", "--budget", "16", "--seed", "1", "--strata", "site"]) == 0
    assert main(["push", "--project", project, "--overlap", "0.25"]) == 0
    assert "16 new task(s) (4 for two experts)" in capsys.readouterr().out

    from annotation.client import LabelStudioClient
    from workbench.config import labelstudio_settings

    sdk = LabelStudioClient(labelstudio_settings(ws)).sdk
    [pid] = [p.id for p in sdk.projects.list() if p.title == project]
    config = sdk.projects.get(id=pid).label_config
    assert 'required="true"' in config.split('<Choices name="species"')[1].split(">")[0]
    tree_url = config.split('apiUrl="')[1].split('"')[0].replace("&amp;", "&")
    tree = httpx.get(tree_url, headers={"Authorization": f"Token {ls.token}"}).json()
    names = {child["alias"] for node in tree for child in node.get("children", [node])}
    assert TOAD in names and len(names) >= 6500
    tasks = list(sdk.tasks.list(project=pid, fields="all"))
    files = {p.name for p in data.rglob("*.wav")} | {p.stem for p in data.rglob("*.wav")} | {"s1", "s2", "prairie"}
    for t in tasks:  # blind: nothing in the task names the file, folder or site
        text = " ".join(str(v) for k, v in t.data.items() if k not in ("audio", "spectrogram"))
        assert not any(f in text for f in files), text
        assert t.data["title"] == f"Clip {t.data['clip_id']}"
    overlap = {t.id for t in tasks if t.overlap == 2}
    assert len(overlap) == 4

    site_of = {t.id: store.clips([t.data["clip_id"]])[0].site for t in tasks}
    noise = [t.id for t in tasks if site_of[t.id] == "noise" and t.id not in overlap]
    contradictory, empty = noise[0], noise[1]
    ann = {}
    for t in tasks:
        result = (answer_for(site_of[t.id]) if t.id not in (contradictory, empty)
                  else [ticks("Noise", SHRIKE)] if t.id == contradictory else [])
        ann[t.id] = sdk.annotations.create(id=t.id, result=result, lead_time=6.0).id
    assert main(["pull", "--project", project]) == 0
    out = capsys.readouterr().out
    assert "16 new, 0 updated (14 usable, 2 rejected, 0 skipped)" in out
    assert f"Noise (no species) ticked together with {SHRIKE}" in out and "empty submission" in out
    assert f"new species named by experts: {TOAD}" in out
    review = sdk.tasks.get(id=contradictory).data["review"]
    assert review.startswith("Not used by the workbench") and "Noise (no species)" in review
    # the expert fixes it; the note goes away
    sdk.annotations.update(id=ann[contradictory], result=[ticks("Noise")])
    assert main(["pull", "--project", project]) == 0
    assert "0 new, 1 updated (1 usable, 0 rejected" in capsys.readouterr().out
    assert sdk.tasks.get(id=contradictory).data["review"] == ""
    assert main(["labels"]) == 0
    assert f"  {TOAD}\n" in capsys.readouterr().out  # the label set offers it from now on

    # a second expert joins through the invite link and labels the overlap share
    assert main(["annotators", "invite", "bob@example.org"]) == 0
    invite = capsys.readouterr().out.split(": ", 1)[1].split()[0]
    bob = sign_up(ls.url, invite[len(ls.url):], "bob@example.org", "bob-pass-12345")
    served = bob.get(f"/api/projects/{pid}/next")
    assert served.status_code == 200 and served.json()["id"] in overlap  # Label Studio serves him the share
    ordered = sorted(overlap)
    disagree = ordered[0]
    first, second = [], []
    for tid in ordered:
        site = site_of[tid]
        mine = answer_for(site)
        theirs = mine if tid != disagree else [ticks(WRYNECK if TRUTH.get(site) != WRYNECK else SHRIKE)]
        r = bob.post(f"/api/tasks/{tid}/annotations/", json={"result": theirs, "lead_time": 9.0})
        assert r.status_code == 201, r.text
        first.append(mine)
        second.append(theirs)
    assert main(["pull", "--project", project]) == 0
    assert "4 new, 0 updated (4 usable" in capsys.readouterr().out

    assert main(["agreement"]) == 0
    out = capsys.readouterr().out
    assert "4 clip(s) labelled by two experts: the same answer on 75%" in out

    def labels_of(result):
        return {x for r in result for x in (r["value"].get("choices") or [p[-1] for p in r["value"].get("taxonomy", [])])
                if x != "Other"}

    a, b = [labels_of(x) for x in first], [labels_of(x) for x in second]
    for label in sorted(set().union(*a, *b)):
        x, y = [int(label in s) for s in a], [int(label in s) for s in b]
        if len(set(x) | set(y)) > 1:
            assert f"{kappa(x, y):6.3f}     4" in out, (label, out)
    assert "annotator bob@example.org: 4 answer(s), 0.6 min, median 9.0 s" in out
    split_clip = next(t.data["clip_id"] for t in tasks if t.id == disagree)
    assert f"clip {split_clip} (task {disagree})" in out

    # fine-tuning takes one answer per clip: the split clip waits for adjudication ...
    from finetune.labelled import labelled_clips

    ids = labelled_clips(store).clip_ids
    assert split_clip not in ids and len(ids) == 14  # 16 clips: the empty one still rejected, one split evenly
    # ... until a reviewer marks one answer as ground truth in Label Studio
    ours = next(a for a in store.annotations() if a.ls_task_id == disagree and a.annotator != "bob@example.org")
    sdk.annotations.update(id=ours.ls_annotation_id, ground_truth=True)
    assert main(["pull", "--project", project]) == 0
    assert "0 new, 1 updated (1 usable" in capsys.readouterr().out
    assert main(["finetune", "--seed", "0"]) == 0
    head = store.current_model_version()
    assert head.metrics["n_train"] + head.metrics["n_test"] == 15
    assert TOAD in head.labels

    # round 2: the head's pre-annotations tick few species, never Other, Noise only alone
    assert main(["sample", "--budget", "12", "--seed", "2"]) == 0
    assert main(["push", "--project", project]) == 0
    capsys.readouterr()
    fresh = [t for t in sdk.tasks.list(project=pid, fields="all") if t.id not in site_of]
    assert len(fresh) == 12
    for t in fresh:
        [pred] = t.predictions
        chosen = [x for r in pred.result if r["from_name"] == "species" for x in r["value"]["choices"]]
        offered = {s["alias"] for s in t.data["suggestions"]}
        assert "Other" not in chosen and len(chosen) <= 3
        assert chosen == ["Noise"] or ("Noise" not in chosen and set(chosen) <= offered), chosen
