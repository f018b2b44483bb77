"""The ``workbench`` command line: one subcommand per stage of the loop, plus ``demo`` and ``status``.

Every subcommand is a thin call into the library (the Streamlit app calls the same functions).
Errors a user can act on are printed as one line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from annotation.settings import DEFAULT_PROJECT
from lab.peers import PEERS
from sampler.parameters import add_sampling_options, offered_strategies, strategy_from_args
from sampler.range_conflict import with_geofence
from workbench import experts, exports, geofence_cmds, ingest_cmds, range_cmds, services, validation
from workbench.config import DEFAULT_APP_PORT, Workspace, labelstudio_settings
from workbench.console import UserError, close_stores, is_user_error, open_store, progress, score_progress

if TYPE_CHECKING:
    from store.status import StoreStatus

log = logging.getLogger("workbench")

_progress = progress


def _print_picks(picks, show: int) -> None:
    for p in picks[:show]:
        print(f"  #{p.rank:<3} clip {p.clip_id:<7} {p.reason}")
    if len(picks) > show:
        print(f"  ... and {len(picks) - show} more (--show N lists more)")


def cmd_sample(ws: Workspace, args: argparse.Namespace) -> int:
    from sampler.run import replay

    store = open_store(ws)
    if getattr(args, "replay", None) is not None:
        r = replay(store, args.replay)
        same = "identical to" if r.identical else "DIFFERENT from"
        print(f"replayed sampling run {r.run.id} ({r.run.strategy}, seed {r.run.seed}): {len(r.picks)} clip(s), "
              f"{same} the stored batch")
        for line in r.differences():
            print(f"  {line}")
        _print_picks(r.picks, args.show)
        return 0 if r.identical else 1
    result = _sample(store, with_geofence(strategy_from_args(args), ws.geofence_file), args)
    run, picks, partial = result.run, result.picks, result.partial
    seed = f"seed {run.seed}" if run.seed is not None else "deterministic"
    print(f"sampling run {run.id}: {len(picks)} clip(s) picked with {run.strategy} ({seed})")
    if partial is not None and partial.pool_share:  # a pool without padded tails (images, whole-window audio) says nothing of them
        print(f"  {partial.statement()}")
    _print_picks(picks, args.show)
    return 0


def _sample(store, strategy, args: argparse.Namespace):
    """The batch ``strategy`` picks from the pool of ``--model-version``, new clips scored first (on stderr)."""
    from finetune.scoring import sample_scored

    result = sample_scored(store, strategy, args.budget, model_version=args.model_version or None,
                           progress=score_progress)
    if result.scored:
        print(file=sys.stderr)
    return result


def cmd_search(ws: Workspace, args: argparse.Namespace) -> int:
    from sampler import MoreLikeThese
    from store import StoreError

    store = open_store(ws)
    try:
        store.clips(list(args.clip_ids))  # an id of no clip at all is not "missing embeddings"
    except StoreError as e:
        raise UserError(f"{e}: search takes ids of clips in this workspace (`workbench sample` and the app "
                        "print them)") from e
    strategy = MoreLikeThese(examples=list(args.clip_ids), metric=args.metric,
                             near_duplicate_radius=args.near_duplicate_radius,
                             near_duplicate_metric=args.near_duplicate_metric)
    result = _sample(store, strategy, args)
    run, picks = result.run, result.picks
    print(f"sampling run {run.id}: {len(picks)} clip(s) like clip(s) {', '.join(map(str, args.clip_ids))}")
    _print_picks(picks, args.show)
    return 0


def cmd_finetune(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.evaluate import recall_statement
    from finetune.train import finetune

    store = open_store(ws)
    mv = finetune(store, ws.models, test_size=args.test_size, random_state=args.seed, C=args.C,
                  progress=lambda done, total: print(f"\r[finetune] re-scored {done}/{total} clips", end="",
                                                     file=sys.stderr, flush=True))
    print(file=sys.stderr)
    m = mv.metrics
    print(f"model {mv.name}: {m.get('n_train')} train / {m.get('n_test')} held-out clips; {recall_statement(m)}")
    intervals = m.get("recall_interval_per_class") or {}
    for label, recall in sorted((m.get("recall_per_class") or {}).items()):
        lo, hi = intervals.get(label, (0.0, 1.0))
        print(f"  recall {recall:.3f} [{lo:.2f}, {hi:.2f}] n={m['support_per_class'].get(label, 0):<4d} {label}")
    _print_calibration(m)
    print("the pool is re-scored with it: the next `workbench sample` uses its uncertainty")
    return 0


def _print_calibration(m: dict) -> None:
    cal = m.get("calibration")
    if not cal:
        if m.get("trained_on_audit_clips"):
            print(f"  not calibrated: it trained on the {len(m['trained_on_audit_clips'])} audit label(s) (too few "
                  "other labels), so `workbench validate` cannot judge it")
        return
    print(f"calibration ({cal['method']}) on {cal['n_audit']} audit label(s) kept out of training; expected "
          "calibration error per class, before -> after (cross-fitted):")
    for label, c in sorted(cal["classes"].items()):
        before, after = c.get("before") or {}, c.get("after") or {}
        to = f"{after['ece']:.3f}" if after else "(uncalibrated)"
        print(f"  ECE {before.get('ece', float('nan')):.3f} -> {to:<14} n={before.get('n', 0):<4d} {label}")
    for label, why in sorted(cal.get("skipped", {}).items()):
        print(f"  uncalibrated {label}: {why}")


def cmd_simulate(ws: Workspace, args: argparse.Namespace) -> int:
    """Replay active learning on labelled data: each strategy against random, same splits and seeds."""
    from lab.report import summary_table
    from lab.simulate import SimulationSettings, parse_budgets, simulate_workspace

    settings = SimulationSettings(strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
                                  pool_file=args.pool, seeds=args.seeds, budgets=parse_budgets(args.budgets),
                                  test_size=args.test_size)
    done = simulate_workspace(open_store(ws), settings, out=Path(args.out) if args.out else None,
                              out_dir=ws.root / "simulations", progress=_simulate_progress)
    print(file=sys.stderr)
    print(summary_table(done.result))
    print(f"simulation {done.run.id} stored; written: {', '.join(str(f) for f in done.files)}")
    return 0


def _simulate_progress(done: int, total: int, message: str) -> None:
    if done == 0:  # what is about to run, on a line of its own
        _progress(f"[simulate] {message}")
    else:
        print(f"\r[simulate] {done}/{total} {message[:70]:<70}", end="", file=sys.stderr, flush=True)


def cmd_status(ws: Workspace, args: argparse.Namespace) -> int:
    from store import mask_password
    from store.status import store_status

    status = store_status(open_store(ws, reading=True))
    print(f"workspace: {ws.root}")
    print(f"database:  {mask_password(ws.db_url) if ws.db_url else 'SQLite (workbench.db in the workspace)'}")
    for key, value in status.counts.items():
        print(f"  {key:<18} {value}")
    mv = status.model
    if mv is not None:
        recall = status.macro_recall
        print(f"current model: {mv.name} ({mv.kind})" + (f", macro recall {recall:.3f}" if recall is not None else ""))
        print(f"  unscored by it     {status.unscored}" + (" (scored before the next sample)" if status.unscored
                                                           else ""))
    _print_runs_and_models(status)
    for name, state in services.status(ws).items():
        print(f"{name}: {state}")
    return 0


STATUS_RUNS = 10  # the newest sampling runs status lists one by one


def _print_runs_and_models(status: StoreStatus) -> None:
    """The runs ``push --run`` and the model versions ``--model-version`` can name (errors point here)."""
    if status.runs:
        print("sampling runs (newest first; `push --run ID`, `sample --replay ID`):")
        for run in reversed(status.runs[-STATUS_RUNS:]):
            print(f"  run {run.id:<4} {run.created_at:%Y-%m-%d %H:%M}  {run.strategy}, {run.budget} clip(s)")
        older = status.runs[:-STATUS_RUNS]
        if older:
            print(f"  ... and {len(older)} older (run {older[0].id} to run {older[-1].id})")
    if status.model_versions:
        current = status.model.id if status.model is not None else None
        print("model versions (`--model-version NAME`):")
        for mv in status.model_versions:
            state = ", current" if mv.id == current else ("" if mv.ready else ", not ready")
            print(f"  {mv.name} ({mv.kind}{state})")


def cmd_serve(ws: Workspace, args: argparse.Namespace) -> int:
    info = services.start_all(ws, app_port=args.app_port, with_app=not args.no_app, progress=_progress)
    _print_urls(ws, info)
    return 0


def cmd_stop(ws: Workspace, args: argparse.Namespace) -> int:
    for line in services.stop_all(ws):
        print(line)
    return 0


def _print_urls(ws: Workspace, info: dict[str, str]) -> None:
    settings = labelstudio_settings(ws)
    print()
    print(f"Label Studio:  {info['labelstudio']}")
    print(f"  login:       {settings.username}")
    print(f"  password:    {settings.password}   (kept in {ws.secrets_file})")
    if "app" in info:
        print(f"Workbench app: {info['app']}")
    print(f"Stop both with: workbench --workspace {ws.root} stop   (from the source folder: ./dev workbench stop)")


def cmd_demo(ws: Workspace, args: argparse.Namespace) -> int:
    """Set everything up and run the main job: samples -> ingest -> sample -> push -> app."""
    from workbench.samples import fetch_samples, generate_field_audio

    if args.audio:
        audio = [Path(p) for p in args.audio]
        missing = [p for p in audio if not p.exists()]
        if missing:
            raise UserError(f"--audio {missing[0]} does not exist")
    else:
        _progress("[demo] fetching sample recordings (cached in the workspace)")
        got = fetch_samples(ws.samples, progress=_progress)
        if not got:
            _progress("[demo] no network: generating field-like recordings instead")
            generate_field_audio(ws.samples)
        audio = [ws.samples]
    info = services.start_all(ws, app_port=args.app_port, with_app=not args.no_app, progress=_progress)
    _progress("[demo] ingesting with BirdNET")
    ingest_cmds.cmd_ingest(ws, argparse.Namespace(paths=audio, metadata=None))
    store = open_store(ws)
    excluded = store.excluded_clip_ids()
    pool = store.pool()
    available = len(pool) - len(set(pool.clip_id.tolist()) & excluded)
    if available > 0:
        args.budget = min(args.budget, available)
        cmd_sample(ws, args)
    else:
        _progress("[demo] every clip is already selected; nothing new to sample")
    experts.cmd_push(ws, args)
    _print_urls(ws, info)
    return 0


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    p.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_HOME or ./workspace)")
    p.add_argument("--db-url", help="SQLAlchemy URL of the store (default: $WORKBENCH_DB_URL or the "
                                    "workspace's SQLite file)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    ingest_cmds.add_parser(sub)

    def sampling_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--budget", type=int, default=20, help="clips to pick (default 20)")
        s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same batch")
        add_sampling_options(s)
        s.add_argument("--model-version", help="score clips with this model version (default: the newest)")
        s.add_argument("--show", type=int, default=20, help="picks to print with their reasons")

    def project_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--project", help=f"Label Studio project title (push: default {DEFAULT_PROJECT!r}; pull: "
                                         f"default every project this workspace pushed to)")
        s.add_argument("--label-set", help="label set name (default: the newest, else one made from the pool)")
        s.add_argument("--min-confidence", type=float, default=0.5,
                       help="a species joins a new label set when the model finds it at this confidence")
        s.add_argument("--boxes", action="store_true",
                       help="image projects: annotators may correct the detector's box (a rectangle on the frame)")

    s = sub.add_parser("sample", help="pick the next batch of clips to label (any strategy), or replay a run")
    sampling_args(s)
    s.add_argument("--replay", type=int, metavar="RUN_ID",
                   help="re-run a stored sampling run with its strategy, parameters and seed and compare the "
                        "batches (writes nothing; exit 1 if they differ)")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("search", help="more like these: the pool clips nearest to example clips (stored as a run)")
    s.add_argument("clip_ids", nargs="+", type=int, metavar="CLIP_ID", help="example clip ids")
    s.add_argument("--budget", type=int, default=20, help="clips to pick (default 20)")
    s.add_argument("--metric", choices=["cosine", "l2"], default="cosine", help="embedding distance (default cosine)")
    s.add_argument("--near-duplicate-radius", type=float,
                   help="skip clips within this distance of a labelled, pending or picked clip")
    s.add_argument("--near-duplicate-metric", choices=["cosine", "l2"], default="cosine")
    s.add_argument("--model-version", help="search the pool of this model version (default: the newest)")
    s.add_argument("--show", type=int, default=20, help="picks to print with their reasons")
    s.set_defaults(func=cmd_search)

    experts.add_parsers(sub, project_args)
    exports.add_parsers(sub)
    validation.add_parsers(sub)
    range_cmds.add_parsers(sub)
    geofence_cmds.add_parsers(sub)

    s = sub.add_parser("finetune", help="train a classifier head on the labels and re-score the pool")
    s.add_argument("--test-size", type=float, default=0.25)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("simulate", help="replay active learning on labelled data: which strategy beats random?")
    s.add_argument("--pool", help="a pool file (.npz or .parquet: embeddings, labels or labels_multi + classes, "
                                  "optional strata, probabilities, times); default: the workspace's labelled clips")
    s.add_argument("--strategies", default="default",
                   help="comma-separated strategies to compare with random ('default' = the workbench's default; "
                        f"any of {', '.join(offered_strategies())}; or scikit-activeml's as skactiveml:NAME, NAME "
                        f"one of {', '.join(PEERS)}, with pip install -e '.[lab]')")
    s.add_argument("--seeds", type=int, default=3, help="seeds (splits and initial sets) to average over")
    s.add_argument("--budgets", default="20:120:20", help="START:STOP:STEP labels (random initial set, last round, "
                                                          "batch size)")
    s.add_argument("--test-size", type=float, default=0.3, help="share of the labelled clips held out to judge heads")
    s.add_argument("--out", help="where to write the JSON (CSV and PNG beside it); default "
                                 "<workspace>/simulations/simulation-<id>.json")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("status", help="what the workspace holds and which services run")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("serve", help="start the local Label Studio and the app (127.0.0.1)")
    s.add_argument("--app-port", type=int, default=DEFAULT_APP_PORT)
    s.add_argument("--no-app", action="store_true")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("stop", help="stop the services this workspace started")
    s.set_defaults(func=cmd_stop)

    s = sub.add_parser("demo", help="set up and run the whole first round on sample recordings")
    s.add_argument("--audio", nargs="+", help="your own recordings (files or folders) instead of the samples")
    s.add_argument("--app-port", type=int, default=DEFAULT_APP_PORT)
    s.add_argument("--no-app", action="store_true")
    sampling_args(s)
    project_args(s)
    s.set_defaults(func=cmd_demo, run=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a reader of its output that goes away (``workbench status | head``) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe is only "Exception ignored" noise
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to say to a closed pipe
        return 141  # as a process ended by SIGPIPE: 128 + 13


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning (a budget beyond the pool) as one line, without Python's source line."""
    print(f"warning: {message}", file=sys.stderr)


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        if not args.verbose:
            warnings.showwarning = _one_line_warning
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        ws = Workspace.resolve(args.workspace, args.db_url)
        return args.func(ws, args)
    except KeyboardInterrupt:
        print("\ninterrupted: everything committed so far is kept; rerun to resume", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user-facing boundary: known errors become one line
        if args.verbose or not _is_user_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        close_stores()


_is_user_error = is_user_error


if __name__ == "__main__":
    sys.exit(main())
