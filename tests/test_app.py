"""The app, page by page, driven with AppTest over a real store (and the helpers behind it, without Streamlit)."""

from __future__ import annotations

import shlex
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from store import Annotation, ModelVersion, Recording, SimulationRun
from store.sources import file_sha256

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = {name: f"workbench/app_pages/{name}.py" for name in ("pool", "sample", "annotate", "rounds", "lab")}
SPECIES = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Parus major_Great Tit",
           "Fringilla coelebs_Common Chaffinch"]
SITES, HOURS, PER_RECORDING, DIM, SR = ("marsh", "wood", "meadow"), (5, 6, 7), 6, 16, 16000


@dataclass
class Built:
    clip_ids: np.ndarray
    species: list[str]  # the true (and top predicted) species of each clip
    site: list[str]


# ------------------------------------------------------------------------------------ a small real workspace
def _tone(path: Path, seconds: float, freq: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
    sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
    return path


def build(ws, tmp_path: Path, noise: float = 0.1) -> Built:
    """Three sites x three morning hours, six 3 s clips each, with audio on disk; four species in clusters
    (``noise`` blurs them: at about 1 a head starts to confuse them)."""
    store = ws.open_store()
    mv = store.ensure_model_version("birdnet-test", "embedding", "birdnet-test", DIM, SPECIES)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(len(SPECIES), DIM))
    ids, species, sites = [], [], []
    for r, (site, hour) in enumerate((s, h) for s in SITES for h in HOURS):
        audio = _tone(tmp_path / f"{site}-{hour:02d}.wav", 3.0 * PER_RECORDING, 1500 + 400 * r, seed=r)
        st = audio.stat()
        rec = store.add_recording(Recording(path=str(audio), content_hash=file_sha256(audio), site=site,
                                            device=f"AM-{site}", start_time=datetime(2024, 5, 1 + r % 2, hour, 0),
                                            sample_rate=SR, channels=1, duration_s=3.0 * PER_RECORDING,
                                            file_size=st.st_size, file_mtime_ns=st.st_mtime_ns, status="done"))
        k = (np.arange(PER_RECORDING) + r) % len(SPECIES)
        probs = np.full((PER_RECORDING, len(SPECIES)), 0.02)
        probs[np.arange(PER_RECORDING), k] = rng.uniform(0.45, 0.95, PER_RECORDING)
        emb = centers[k] + rng.normal(scale=noise, size=(PER_RECORDING, DIM))
        spans = [(3.0 * i, 3.0 * i + 3.0) for i in range(PER_RECORDING)]
        ids += store.add_clip_batch(rec.id, spans, mv, probs, emb.astype(np.float32)).tolist()
        species += [SPECIES[i] for i in k]
        sites += [site] * PER_RECORDING
    store.close()
    return Built(np.asarray(ids, dtype=np.int64), species, sites)


def annotate(ws, built: Built, rows: slice, project_id: int = 7) -> None:
    """Expert labels (the true species) for some clips, as a pull would store them."""
    store = ws.open_store()
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    for i in range(*rows.indices(len(built.clip_ids))):
        store.upsert_annotation(Annotation(clip_id=int(built.clip_ids[i]), project_id=project_id, ls_task_id=100 + i,
                                           ls_annotation_id=500 + i, labels=[built.species[i]], state="active",
                                           created_at=now, updated_at=now))
    store.close()


def sample_run(ws, budget: int = 6, seed: int = 1) -> int:
    from sampler import UncertainDiverse
    from sampler.run import sample

    store = ws.open_store()
    run, _ = sample(store, UncertainDiverse(random_state=seed), budget)
    store.close()
    return run.id


def two_rounds(ws, built: Built) -> None:
    """Two real fine-tunes: 24 labels, then 42."""
    from finetune.train import finetune

    for stop in (24, 42):
        annotate(ws, built, slice(0, stop))
        store = ws.open_store()
        finetune(store, ws.models, test_size=0.3)
        store.close()


def add_simulation(ws, strategies=("random", "uncertain_diverse")) -> int:
    store = ws.open_store()
    curves = {s: {str(seed): [[10, 0.3 + 0.05 * k + 0.01 * seed], [20, 0.5 + 0.05 * k], [30, 0.6 + 0.05 * k]]
                  for seed in range(3)} for k, s in enumerate(strategies)}
    summary = {s: {"aulc": 0.5 + 0.05 * k, "final": 0.6 + 0.05 * k, "labels_to_random_final": 30 - 10 * k}
               for k, s in enumerate(strategies)}
    run = store.add_simulation_run(SimulationRun(source="workspace", params={"seeds": [0, 1, 2], "budgets": [10, 30, 10],
                                                                             "n_clips": 42},
                                                 summary=summary, curves=curves, seconds=3.5))
    store.close()
    return run.id


@pytest.fixture
def ws_env(workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    monkeypatch.delenv("WORKBENCH_DB_URL", raising=False)
    return workspace


@pytest.fixture
def no_labelstudio(monkeypatch):
    """LABEL_STUDIO_URL at a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-token")
    return port


def app(page: str = "pool") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page != "pool":
        at.switch_page(PAGES[page]).run()
    return at


WIDGETS = ("button", "selectbox", "multiselect", "radio", "slider", "number_input", "text_input", "text_area",
           "checkbox", "toggle")  # "button" includes form submit buttons


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def table(at: AppTest, key: str):
    """The DataFrame a page shows in the container keyed ``key`` (see ``ui.table``)."""
    return at.get_by_key(key).dataframe[0].value


def widgets(at: AppTest) -> list:
    return [w for kind in WIDGETS for w in at.get(kind)]


# ------------------------------------------------------------------------------------ every page, every state
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_on_an_empty_workspace_says_what_to_run(ws_env, no_labelstudio, page):
    at = app(page)
    assert not at.exception
    assert at.info, f"{page}: no hint on an empty workspace"
    assert "workbench" in texts(at.info)


@pytest.mark.parametrize("damage", ["cut short", "deleted"])
@pytest.mark.parametrize("page", list(PAGES))
def test_a_damaged_vectors_folder_is_one_line_on_every_page_not_a_traceback(ws_env, no_labelstudio, tmp_path, page,
                                                                            damage):
    import shutil

    build(ws_env, tmp_path)
    vectors = ws_env.root / "vectors"
    if damage == "deleted":
        shutil.rmtree(vectors)
    else:
        for f in vectors.iterdir():
            if not f.name.endswith(".ids"):
                with open(f, "r+b") as fh:  # an interrupted copy of the workspace
                    fh.truncate(f.stat().st_size // 2)
    at = app(page)
    assert not at.exception, at.exception
    errors = texts(at.error).replace("\\", "")
    if page == "pool":
        assert errors, "the Pool page reads the pool's matrices: it must say what is wrong with them"
    if errors:
        said = ("bytes but the database says 54 rows" if damage == "cut short"
                else "is missing but the database says 54 rows are stored")
        assert said in errors and "vectors/" in errors, errors


def test_navigation_offers_the_five_pages(ws_env, tmp_path):
    build(ws_env, tmp_path)
    at = app()
    assert not at.exception
    assert [t.value for t in at.title] == ["Pool"]
    for page in PAGES:
        assert Path(APP).parent.joinpath(PAGES[page]).exists()


# ------------------------------------------------------------------------------------ Pool
def test_pool_page_shows_where_when_and_which_species(ws_env, tmp_path):
    build(ws_env, tmp_path)
    at = app("pool")
    assert not at.exception
    assert at.metric[0].value == "54"
    assert not at.warning
    species = table(at, "pool_species_table")
    assert species["clips"].sum() == 54 and list(species["clips"]) == sorted(species["clips"], reverse=True)
    assert at.radio(key="hist_metric").value == "max_entropy"
    at.radio(key="hist_metric").set_value("top1").run()
    assert not at.exception


def head_that_scored_two_clips(ws) -> None:
    """A fine-tuned head that scored only the first two clips (the rest were ingested after it)."""
    from finetune.head import ClassifierHead

    store = ws.open_store()
    rng = np.random.default_rng(0)
    head = ClassifierHead().fit(rng.random((6, DIM)), [["a"], ["b"]] * 3, classes=["a", "b"])
    path = head.save(ws.models / "head.npz")
    mv = store.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="birdnet-test",
                                              dim=2, labels=["a", "b"], artifact_path=str(path)))
    view = store.embeddings("birdnet-test")
    store.write_model_outputs(mv, view.ids[:2], head.predict_proba(np.asarray(view.data[:2])))
    store.close()


def test_clips_the_current_head_has_not_scored_are_counted(ws_env, tmp_path):
    build(ws_env, tmp_path)
    head_that_scored_two_clips(ws_env)
    at = app("pool")
    assert not at.exception
    assert "52 clips ingested after head-1" in texts(at.warning)
    at.selectbox(key="pool_model").set_value("birdnet-test").run()  # BirdNET's pool: all 54 clips
    assert not at.exception
    assert table(at, "pool_species_table")["clips"].sum() == 54


# ------------------------------------------------------------------------------------ Sample
def test_sample_page_offers_every_parameter_of_every_strategy(ws_env, tmp_path):
    from sampler import STRATEGIES
    from workbench.strategy_form import strategy_names

    build(ws_env, tmp_path)
    at = app("sample")
    assert not at.exception
    for name in strategy_names():
        at.selectbox(key="sample_strategy").set_value(name).run()
        assert not at.exception, name
        params = set(STRATEGIES[name]().get_params(deep=False)) - {"random_state", "inner"}
        if name == "stratified":
            params |= set(STRATEGIES["uncertainty"]().get_params(deep=False)) - {"random_state"}
            assert at.selectbox(key="sample_inner").value == "uncertainty"
        prefix = f"sample_{name}_{'uncertainty' if name == 'stratified' else ''}_"
        keys = {str(w.key)[len(prefix):] for w in widgets(at) if str(w.key).startswith(prefix)}
        assert params <= keys, f"{name}: no control for {params - keys}"


def test_preview_stores_nothing_and_save_stores_the_previewed_batch(ws_env, tmp_path):
    build(ws_env, tmp_path)
    at = app("sample")
    at.selectbox(key="sample_strategy").set_value("uncertain_diverse").run()
    at.number_input(key="sample_budget").set_value(5).run()
    at.number_input(key="sample_seed").set_value(3).run()
    at.button(key="sample_preview").click().run()
    assert not at.exception and not at.error
    batch = table(at, "sample_preview_table")
    assert len(batch) == 5 and batch["reason"].str.len().min() > 0
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(at.get("audio")) == 5 and len(at.get("image")) == 5  # every card: spectrogram and player
    store = ws_env.open_store()
    assert store.sampling_runs() == []  # a preview writes nothing
    store.close()
    assert any("Stored batches" in h.value for h in at.subheader)

    at.button(key="sample_save").click().run()
    assert not at.exception and not at.error
    assert "(the batch previewed)" in texts(at.success)
    store = ws_env.open_store()
    [run] = store.sampling_runs()
    stored = [s.clip_id for s in store.selections(run.id)]
    store.close()
    assert stored == batch["clip_id"].tolist()
    assert (run.strategy, run.seed, run.budget) == ("uncertain_diverse", 3, 5)
    assert table(at, "selection_table")["clip_id"].tolist() == stored


def test_save_scores_new_clips_first_as_workbench_sample_does(ws_env, tmp_path):
    build(ws_env, tmp_path)
    head_that_scored_two_clips(ws_env)
    at = app("sample")
    at.selectbox(key="sample_strategy").set_value("uncertainty").run()
    at.number_input(key="sample_budget").set_value(4).run()
    at.button(key="sample_preview").click().run()
    assert not at.exception and not at.error
    assert "52 clips are not scored by head-1 yet" in texts(at.warning)
    assert len(table(at, "sample_preview_table")) == 2  # only the two it scored
    at.button(key="sample_save").click().run()
    assert not at.exception and not at.error
    assert "not the batch previewed" in texts(at.success)
    store = ws_env.open_store()
    assert store.unscored_clip_ids(store.model_version("head-1")).size == 0
    [run] = store.sampling_runs()
    assert len(store.selections(run.id)) == 4 and run.model_version_id == store.model_version("head-1").id
    store.close()


def test_the_form_builds_what_the_command_line_builds(ws_env):
    from sampler.parameters import strategy_from_args
    from workbench import cli
    from workbench.strategy_form import build_strategy, command_line, strategy_controls, strategy_names

    values = {"combined": {"strata": ("site", "hour"), "weights": "u=1,d=0.5,b=2", "pca": None,
                           "quotas": "site=marsh:2,site=wood:1", "min_per_stratum": 1, "uncertainty": "ratio"},
              "stratified": {"strata": ("site",), "quotas": "proportional", "pca": 16, "candidates": "uncertain"}}
    for name in strategy_names():
        inner = "kcenter" if name == "stratified" else None
        given = values.get(name) or {c.param: c.default for c in strategy_controls(name, inner)}
        from_form = build_strategy(name, given, seed=4, inner=inner)
        line = command_line(name, given, budget=9, seed=4, inner=inner)
        args = cli.build_parser().parse_args(shlex.split(line)[1:])
        from_cli = strategy_from_args(args)  # what `workbench sample` runs
        assert repr(from_form) == repr(from_cli), line
        assert args.budget == 9


def test_a_bad_option_is_one_line_not_a_traceback(ws_env, tmp_path):
    build(ws_env, tmp_path)
    at = app("sample")
    at.selectbox(key="sample_strategy").set_value("combined").run()
    at.text_input(key="sample_combined__weights").set_value("speed=3").run()
    at.button(key="sample_preview").click().run()
    assert not at.exception
    [error] = at.error
    assert "--weights" in error.value and "\n" not in error.value


def test_stored_batches_show_reasons_audio_and_spectrograms(ws_env, tmp_path):
    build(ws_env, tmp_path)
    first = sample_run(ws_env, budget=3, seed=1)
    second = sample_run(ws_env, budget=4, seed=2)
    at = app("sample")
    assert not at.exception
    assert at.selectbox(key="sample_run").value == second
    assert len(table(at, "selection_table")) == 4
    at.selectbox(key="sample_run").set_value(first).run()
    batch = table(at, "selection_table")
    assert len(batch) == 3 and batch["reason"].str.len().min() > 0
    assert len(at.get("audio")) == 3 and len(at.get("image")) == 3
    assert list(ws_env.clips.glob("clip-*.png"))


def test_a_changed_source_is_not_played_and_says_why(ws_env, tmp_path):
    build(ws_env, tmp_path)
    sample_run(ws_env, budget=2)
    for wav in tmp_path.glob("*.wav"):
        sf.write(wav, np.zeros(SR * 18, dtype=np.float32), SR)  # every recording replaced after ingest
    at = app("sample")
    assert not at.exception
    assert len(at.get("audio")) == 0
    assert sum("changed since it was ingested" in c.value for c in at.caption) == 2


# ------------------------------------------------------------------------------------ Annotate
def test_annotate_page_without_label_studio_says_so_in_one_line(ws_env, tmp_path, no_labelstudio):
    built = build(ws_env, tmp_path)
    run_id = sample_run(ws_env, budget=6)
    store = ws_env.open_store()
    picked = [s.clip_id for s in store.selections(run_id)]
    store.close()
    position = {int(c): i for i, c in enumerate(built.clip_ids)}
    annotate(ws_env, built, slice(position[picked[0]], position[picked[0]] + 1))
    at = app("annotate")
    assert not at.exception
    [error] = at.error
    assert "cannot reach Label Studio" in error.value and "\n" not in error.value
    progress = table(at, "annotate_progress")
    assert progress["picks"].tolist() == [6] and progress["labelled clips"].tolist() == [1]
    assert any("workbench serve" in i.value for i in at.info)


def test_annotate_page_shows_agreement_between_experts(ws_env, tmp_path, no_labelstudio):
    built = build(ws_env, tmp_path)
    sample_run(ws_env, budget=4)
    store = ws_env.open_store()
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    for i in range(4):  # two experts on four clips; they disagree on the last
        for who, offset in (("ann@lab.org", 0), ("bob@lab.org", 1000)):
            label = built.species[i] if (who, i) != ("bob@lab.org", 3) else "Noise"
            store.upsert_annotation(Annotation(clip_id=int(built.clip_ids[i]), project_id=7, ls_task_id=100 + i,
                                               ls_annotation_id=500 + i + offset, labels=[label], annotator=who,
                                               state="active", created_at=now, updated_at=now, lead_time=5.0))
    store.close()
    at = app("annotate")
    assert not at.exception
    experts = table(at, "annotate_annotators")
    assert experts["annotator"].tolist() == ["ann@lab.org", "bob@lab.org"] and experts["answers"].tolist() == [4, 4]
    assert set(table(at, "annotate_agreement")["n"]) == {4}
    assert table(at, "annotate_disagreements")["clip"].tolist() == [int(built.clip_ids[3])]
    assert any("4 clip(s) labelled by two experts: the same answer on 75%" in c.value for c in at.caption)


@pytest.mark.labelstudio
def test_annotate_page_pushes_with_spectrograms_and_pulls(served_workspace, tmp_path):
    from workbench.config import labelstudio_settings

    build(served_workspace, tmp_path)
    run_id = sample_run(served_workspace, budget=3)
    at = app("annotate")
    assert not at.exception and not at.error
    at.text_input(key="annotate_project").set_value(f"app test {uuid.uuid4().hex[:8]}").run()  # a project of its own
    assert "does not exist yet" in texts(at.caption)
    at.button(key="annotate_push").click().run()
    assert not at.exception and not at.error
    assert len(list(served_workspace.clips.glob("clip-*.png"))) == 3
    [link] = at.get("link_button")
    url = link.proto.url
    assert url.startswith(labelstudio_settings(served_workspace).url) and url.endswith("/data")
    project_id = int(url.rstrip("/").split("/")[-2])
    store = served_workspace.open_store()
    tasks = store.tasks(project_id)
    picks = {s.clip_id for s in store.selections(run_id)}
    store.close()
    assert set(tasks) == picks
    progress = table(at, "annotate_progress")
    assert progress["pushed"].tolist() == [3]
    at.button(key="annotate_pull").click().run()
    assert not at.exception and not at.error
    assert f"pulled from project {project_id}" in texts(at.success)


# ------------------------------------------------------------------------------------ Rounds
def test_rounds_page_draws_the_learning_curves_and_the_confusion(ws_env, tmp_path):
    built = build(ws_env, tmp_path)
    two_rounds(ws_env, built)
    at = app("rounds")
    assert not at.exception and not at.info
    assert at.metric[0].value == "2"
    captions = " ".join(c.value for c in at.caption)
    assert "held-out clips (fewest per class" in captions  # every figure with its n
    if "rough figure" in captions:  # too few held-out clips: no big number
        assert at.metric[1].value == "rough"
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) >= 4
    at.radio(key="rounds_x").set_value("n_clips").run()
    assert not at.exception
    history = table(at, "model_history")
    assert history["kind"].tolist() == ["embedding", "classifier", "classifier"]


def audited_round(ws, built: Built, budget: int = 30) -> str:
    """``budget`` audit labels (one clip disputed by a second expert), a calibrated fine-tune and its validation:
    the Rounds page's trust section. Returns the head's name."""
    from finetune.train import finetune
    from finetune.validate import validate
    from sampler import AuditSample
    from sampler.run import sample

    store = ws.open_store()
    _, picks = sample(store, AuditSample(bins=5, random_state=0), budget)
    now = datetime(2024, 6, 2, tzinfo=timezone.utc)
    species = dict(zip(built.clip_ids.tolist(), built.species))
    for k, p in enumerate(picks):
        store.upsert_annotation(Annotation(clip_id=p.clip_id, project_id=8, ls_task_id=900 + k, ls_annotation_id=990 + k,
                                           labels=[species[p.clip_id]], state="active", created_at=now, updated_at=now))
    store.upsert_annotation(Annotation(clip_id=picks[0].clip_id, project_id=8, ls_task_id=950, ls_annotation_id=5000,
                                       labels=["Noise"], annotator="second@lab", state="active", created_at=now,
                                       updated_at=now))  # a second expert disagrees on one audit clip
    head = finetune(store, ws.models, test_size=0.3)
    validate(store, head, target_precision=0.8)
    store.close()
    return head.name


def test_rounds_page_shows_calibration_and_auto_validation_from_audit_labels(ws_env, tmp_path):
    built = build(ws_env, tmp_path, noise=0.8)
    annotate(ws_env, built, slice(0, 24))
    head_name = audited_round(ws_env, built)
    at = app("rounds")
    assert not at.exception and not at.error
    assert at.selectbox(key="rounds_trust_model").value == head_name
    ece = table(at, "rounds_ece")
    assert set(ece["class"]) == set(SPECIES) and (ece["n"] == 29).all()  # calibrated where the experts agree
    assert ece["ece_before"].notna().all()
    checked = table(at, "rounds_validation")
    assert set(checked["species"]) <= set(SPECIES) and len(checked)
    captions = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "platt on 29 audit labels" in captions and "precision >= 0.8 with confidence 0.9 per species" in captions, \
        captions
    assert "from 30 audit labels" in captions and "1 of them disputed by their experts" in captions, captions
    at.selectbox(key="rounds_reliability_class").set_value(SPECIES[1]).run()
    assert not at.exception


def test_rounds_page_before_any_finetune(ws_env, tmp_path):
    build(ws_env, tmp_path)
    at = app("rounds")
    assert not at.exception
    assert "workbench finetune" in texts(at.info)
    assert table(at, "model_history")["kind"].tolist() == ["embedding"]


# ------------------------------------------------------------------------------------ Lab
def test_lab_page_compares_stored_simulations(ws_env, tmp_path):
    build(ws_env, tmp_path)
    first, second = add_simulation(ws_env), add_simulation(ws_env, ("random", "typiclust", "kcenter"))
    at = app("lab")
    assert not at.exception
    assert table(at, "lab_runs")["id"].tolist() == [second, first]
    assert at.multiselect(key="lab_chosen").value == [second]
    at.multiselect(key="lab_chosen").set_value([second, first]).run()
    assert not at.exception
    summary = table(at, f"lab_summary_{first}")
    assert summary["strategy"].tolist() == ["uncertain_diverse", "random"]  # best area under the curve first


def run_lab_form(at, strategies) -> None:
    """The Lab page's form: these strategies, one seed, 8..16 labels by 4, then Run."""
    at.multiselect(key="lab_strategies").set_value(strategies)
    at.number_input(key="lab_seeds").set_value(1)
    at.number_input(key="lab_start").set_value(8)
    at.number_input(key="lab_stop").set_value(16)
    at.number_input(key="lab_step").set_value(4)
    at.button(key="lab_run").click().run()


def test_lab_page_runs_a_simulation(ws_env, tmp_path):
    pytest.importorskip("lab.simulate", reason="the lab package (workbench simulate) is not installed")
    built = build(ws_env, tmp_path)
    annotate(ws_env, built, slice(0, 54))
    at = app("lab")
    assert not at.exception
    run_lab_form(at, ["uncertainty"])
    assert not at.exception and not at.error, texts(at.error)
    assert "Simulation 1 stored" in texts(at.success)
    store = ws_env.open_store()
    [run] = store.simulation_runs()
    store.close()
    assert set(run.summary) == {"random", "uncertainty"}


def test_lab_page_runs_the_published_library_beside_ours(ws_env, tmp_path):
    pytest.importorskip("skactiveml", reason="needs scikit-activeml (pip install -e '.[lab]')")
    built = build(ws_env, tmp_path)
    annotate(ws_env, built, slice(0, 54))
    at = app("lab")
    assert "skactiveml:TypiClust" in at.multiselect(key="lab_strategies").options
    run_lab_form(at, ["default", "skactiveml:TypiClust"])
    assert not at.exception and not at.error, texts(at.error)
    [line] = [c.value for c in at.caption if "minus best peer" in c.value]
    assert line.startswith("default AULC minus best peer (skactiveml:TypiClust): ")


# ------------------------------------------------------------------------------------ the helpers, no Streamlit
def test_pool_breakdown_coverage_and_tail(ws_env, tmp_path):
    from workbench.overview import coverage, pool_breakdown, species_tail

    build(ws_env, tmp_path)
    store = ws_env.open_store()
    pool = store.pool()
    parts = pool_breakdown(pool)
    assert dict(zip(parts["site"]["site"], parts["site"]["clips"])) == {s: 18 for s in SITES}
    assert parts["hour"]["clips"].sum() == 54 and len(parts["hour"]) == 24
    assert parts["hour"].set_index("hour").loc[[5, 6, 7], "clips"].tolist() == [18, 18, 18]
    assert parts["day"]["clips"].tolist() == [30, 24]
    grid = coverage(pool)
    assert len(grid) == 3 * 24 and grid["clips"].sum() == 54
    assert grid.set_index(["site", "hour"]).loc[("wood", 6), "clips"] == 6
    tail = species_tail(pool)
    assert tail["clips"].sum() == 54 and tail["rank"].tolist() == list(range(1, len(tail) + 1))
    store.close()


def test_evaluate_records_a_confusion_matrix_as_json():
    import json

    from finetune.evaluate import evaluate

    truth = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=bool)
    pred = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    m = json.loads(json.dumps(evaluate(truth, pred, ["a", "b", "c"], ["s"] * 4)))
    assert m["confusion"] == {"labels": ["a", "b", "c"], "columns": ["a", "b", "c", "none predicted"],
                              "counts": [[1, 0, 0, 1], [1, 1, 1, 0], [0, 0, 1, 0]]}


def test_learning_curves_and_confusion_from_real_rounds(ws_env, tmp_path):
    from workbench.rounds import class_curves, confusion_frame, heads, learning_curve, site_curves

    built = build(ws_env, tmp_path)
    two_rounds(ws_env, built)
    store = ws_env.open_store()
    curve = learning_curve(store, "n_clips")
    assert curve["labels"].tolist() == [24, 42] and curve["macro_recall"].between(0, 1).all()
    assert set(class_curves(store)["class"]) <= set(SPECIES)
    assert set(site_curves(store)["site"]) <= set(SITES)
    frame = confusion_frame(heads(store)[-1])
    assert set(frame["predicted"]) == set(heads(store)[-1].labels) | {"none predicted"}
    store.close()


def test_preview_and_map_write_nothing(ws_env, tmp_path):
    from sampler import UncertainDiverse
    from workbench.preview import embedding_map, group_counts, preview

    build(ws_env, tmp_path)
    store = ws_env.open_store()
    p = preview(store, UncertainDiverse(random_state=0), 6)
    assert len(p.picks) == 6 and p.pool_size == 54 and p.unscored == 0
    frame = embedding_map(store, store.pool().clip_id, p.picks, "birdnet-test", sample_size=20, seed=1)
    assert (frame["kind"] == "pick").sum() == 6 and (frame["kind"] == "pool").sum() == 20
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert group_counts(p.picks, "cluster")["picks"].sum() == 6
    assert store.sampling_runs() == [] and store.counts()["selected"] == 0
    store.close()


def test_mean_curves_average_over_seeds(ws_env):
    from workbench.simulations import mean_curves, runs_table, summary_frame

    run_id = add_simulation(ws_env)
    store = ws_env.open_store()
    [run] = store.simulation_runs()
    store.close()
    curves = mean_curves(run)
    random = curves[curves["strategy"] == "random"]
    assert random["labels"].tolist() == [10, 20, 30] and random["seeds"].tolist() == [3, 3, 3]
    assert random["macro_recall"].iloc[0] == pytest.approx(0.31)
    assert summary_frame(run)["strategy"].tolist() == ["uncertain_diverse", "random"]
    assert runs_table([run])["id"].tolist() == [run_id]


def test_batch_progress_counts_picks_tasks_and_labels(ws_env, tmp_path):
    from store import Task
    from workbench.labelling import batch_progress

    built = build(ws_env, tmp_path)
    run_id = sample_run(ws_env, budget=4)
    store = ws_env.open_store()
    picks = [s.clip_id for s in store.selections(run_id)]
    store.add_tasks([Task(project_id=3, clip_id=c, ls_task_id=900 + i, run_id=run_id) for i, c in enumerate(picks[:3])])
    store.close()
    position = {int(c): i for i, c in enumerate(built.clip_ids)}
    annotate(ws_env, built, slice(position[picks[0]], position[picks[0]] + 1), project_id=3)
    store = ws_env.open_store()
    row = batch_progress(store, [3]).iloc[0]
    assert (row["picks"], row["pushed"], row["labelled clips"]) == (4, 3, 1)
    assert batch_progress(store)["pushed"].isna().all()  # no project known: pushed is unknown, not 0
    store.close()


def test_every_widget_has_a_key(ws_env, tmp_path):
    """Behaviour tests find widgets by key: none of the pages may leave one to its position."""
    built = build(ws_env, tmp_path)
    sample_run(ws_env)
    two_rounds(ws_env, built)
    add_simulation(ws_env)
    for page in PAGES:
        at = app(page)
        if page == "sample":
            at.button(key="sample_preview").click().run()
        found = widgets(at)
        assert found, page
        for w in found:
            assert w.key, f"{page}: a {w.type} ({getattr(w, 'label', '')!r}) has no key"
        keys = [w.key for w in found]
        assert len(keys) == len(set(keys)), page



def test_image_clips_show_the_crop_and_its_frame(ws_env, tmp_path):
    from PIL import Image

    store = ws_env.open_store()
    labels = ["leopard cat", "sambar", "Noise"]
    mv = store.ensure_model_version("vision-test", "embedding", "vision-test", DIM, labels, output_type="softmax")
    rng = np.random.default_rng(3)
    for i in range(3):
        path = tmp_path / f"StationA__2009-04-2{i}__00-40-00(1).JPG"
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path, quality=90)
        st = path.stat()
        rec = store.add_recording(Recording(path=str(path), content_hash=file_sha256(path), modality="image",
                                            site="StationA", start_time=datetime(2009, 4, 20 + i, 0, 40),
                                            file_size=st.st_size, file_mtime_ns=st.st_mtime_ns, status="done"))
        probs = rng.dirichlet(np.ones(3), 2).astype(np.float32)
        store.add_clip_batch(rec.id, [(1.0, 1.0), (2.0, 2.0)], mv, probs, rng.normal(size=(2, DIM)),
                             boxes=[(0.1, 0.1, 0.4, 0.5, "animal", 0.9), (0.5, 0.4, 0.3, 0.3, "animal", 0.6)])
    store.close()
    sample_run(ws_env, budget=3)
    at = app("sample")
    assert not at.exception
    assert len(at.get("audio")) == 0
    assert len(at.get("image")) == 6  # each crop, and its frame with the box drawn
    assert len(list(ws_env.clips.glob("clip-*-frame.jpg"))) == 3
