"""The command line of the expert channel: push, pull, labels, annotators, agreement (parsing and printing only).

The work is done by ``annotation`` (projects, client, vocabulary, agreement) and ``workbench.labelling``
(reaching the workspace's Label Studio), the same functions the app's Annotate page calls.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.config import Workspace
from workbench.console import UserError, open_store, progress


def cmd_push(ws: Workspace, args: argparse.Namespace) -> int:
    from annotation.client import sampling_run
    from workbench import labelling

    store = open_store(ws)
    if getattr(args, "run", None) is not None:
        sampling_run(store, args.run)  # an unknown --run is refused before Label Studio is asked anything
    client = labelling.connect(ws)
    choice = labelling.ProjectChoice.from_args(args)
    report = labelling.push(ws, store, client, choice, run_id=getattr(args, "run", None),
                            overlap=getattr(args, "overlap", 0.0) or 0.0,
                            show_source=bool(getattr(args, "show_source", False)))
    print(f"pushed to project {report.project_id}: {report.summary()}")
    for clip_id, path, reason in report.failed:
        print(f"  not pushed: clip {clip_id} ({Path(path).name}): {reason}")
    for line in report.replaced_lines():  # not an error: nothing is left to fix, so no exit 1
        print(f"  left out: {line}")
    if report.overlap_note():
        print(f"  {report.overlap_note()}")
    if report.failed:
        print("  fix those files (or re-ingest them) and push again: the other clips are in Label Studio")
        return 1
    return 0


def cmd_pull(ws: Workspace, args: argparse.Namespace) -> int:
    from workbench import labelling

    store = open_store(ws)
    client = labelling.connect(ws)
    pulled = labelling.pull(store, client, labelling.ProjectChoice.from_args(args), ws)
    if not pulled:
        print("nothing to pull: this workspace has pushed no task to Label Studio yet (`workbench push` sends the "
              "last sampling run)")
    for project_id, r in pulled:
        print(r.summary(project_id))
        base = labelling.project_url(ws, project_id)
        for clip_id, task_id, who, reason in r.rejections:
            print(f"  rejected: clip {clip_id} by {who}: {reason} ({base}?task={task_id}; the task now says why)")
        if r.new_species:
            print(f"  new species named by experts: {', '.join(r.new_species)} (label set {r.label_set!r})")
    return 0


def cmd_labels(ws: Workspace, args: argparse.Namespace) -> int:
    """Show what annotators choose from; derive an edited label set (the next push uses it)."""
    from annotation.labelset import derive_label_set, display_label, label_set_from_pool
    from annotation.vocabulary import genus_of, vocabulary_for

    store = open_store(ws, reading=not (args.add or args.remove))
    current = store.label_set(args.label_set) if args.label_set else store.label_set()
    if args.label_set and current is None:
        raise UserError(f"no label set named {args.label_set!r}")
    if store.read_only and (current is None or args.from_pool):
        raise UserError(f"the workspace folder {ws.root} is read-only and holds no label set to show: run "
                        f"`workbench labels` once where it can be written (that stores the set made from the pool)")
    if current is None or args.from_pool:
        current = label_set_from_pool(store, min_confidence=args.min_confidence, max_species=args.max_species)
    if args.add or args.remove:
        before = current
        current = derive_label_set(store, current, add=args.add or (), remove=args.remove or (), name=args.name)
        if current is before:
            print(f"{', '.join(args.add)} already in label set {current.name!r}: nothing changed")
    print(f"label set {current.name!r} ({len(current.labels)} labels):")
    for label in current.labels:
        print(f"  {label}")
    mv = store.current_model_version()
    if mv is None:
        return 0
    vocab = vocabulary_for(store, mv, current.labels)
    species = [x for x in vocab.labels if x not in ("Other", "Noise")]
    genera = {g for g in map(genus_of, species) if g}
    print(f"annotators also search {len(species):,} names ({len(genera):,} genera, each selectable as 'Genus sp.') "
          f"of model {mv.name!r} and its base, and may type a new one; each task offers the clip's likely species")
    for text in args.find or ():
        hits = [x for x in species if text.casefold() in x.casefold() or text.casefold() in display_label(x).casefold()]
        print(f"  {text!r}: " + (", ".join(hits[:10]) + (f" and {len(hits) - 10} more" if len(hits) > 10 else "")
                                 if hits else "not known: annotators can still type it as a new species"))
    return 0


def cmd_annotators(ws: Workspace, args: argparse.Namespace) -> int:
    """A sign-up link for another expert (Community Edition sends no e-mail: pass the link on)."""
    from workbench import labelling

    client = labelling.connect(ws)
    link = client.invite_link()
    print(f"send {args.email} this sign-up link to Label Studio ({labelling.project_base(ws)}): {link}")
    print("they sign up with that e-mail address and a password, then open the project and press Label All Tasks")
    return 0


def cmd_agreement(ws: Workspace, args: argparse.Namespace) -> int:
    """Per-species agreement between experts, what each did, and the clips to adjudicate."""
    from annotation.agreement import agreement

    store = open_store(ws)
    r = agreement(store.annotations())
    if not r.double:
        print(f"no clip has answers from two experts yet ({len(r.annotators)} annotator(s)); push with --overlap "
              f"0.1 to have a tenth of a batch labelled twice")
    else:
        print(f"{r.double} clip(s) labelled by two experts: the same answer on {r.exact:.0%}")
        print("  kappa     n  both  one  species")
        for s in sorted(r.species, key=lambda s: (s.kappa if s.kappa is not None else 2.0, s.label)):
            kappa = f"{s.kappa:6.3f}" if s.kappa is not None else "   n/a"
            print(f"  {kappa} {s.n:5d} {s.both:5d} {s.one:4d}  {s.label}")
        if any(s.n < 20 for s in r.species):
            print("  (fewer than 20 doubly labelled clips: treat these kappas as rough)")
    for a in r.annotators:
        med = f", median {a.median_seconds:.1f} s" if a.median_seconds is not None else ""
        print(f"annotator {a.annotator}: {a.annotations} answer(s), {a.seconds / 60:.1f} min{med}")
    todo = r.to_adjudicate
    if todo:
        print(f"{len(todo)} clip(s) to adjudicate (their experts split evenly: training leaves them out until one "
              f"answer is marked ground truth in Label Studio or a third expert labels it):")
        for d in todo[: args.show]:
            answers = "; ".join(f"{who}: {', '.join(labels)}" for who, labels in d.answers.items())
            print(f"  clip {d.clip_id} (task {d.task_id}): {answers}")
        if len(todo) > args.show:
            print(f"  ... and {len(todo) - args.show} more")
    if r.settled:
        print(f"{sum(r.settled.values())} disagreement(s) settled, training takes one answer: "
              + ", ".join(f"{n} by {how}" for how, n in sorted(r.settled.items())))
    return 0


def add_parsers(sub, project_args) -> None:
    """The expert channel's subcommands, on the CLI's subparsers (``project_args`` adds --project etc.)."""
    s = sub.add_parser("push", help="send a sampling run's clips to Label Studio as tasks")
    project_args(s)
    s.add_argument("--run", type=int, help="sampling run id (default: the last one)")
    s.add_argument("--overlap", type=float, default=0.0, metavar="SHARE",
                   help="share of the new tasks two experts label, to measure agreement (e.g. 0.1)")
    s.add_argument("--show-source", action="store_true",
                   help="show file, site and time in the task (default: blind; file names often name species)")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("pull", help="bring new, edited and deleted annotations back from Label Studio")
    project_args(s)
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser("labels", help="what annotators choose from; --add/--remove make an edited label set")
    s.add_argument("--label-set", help="start from this label set (default: the newest)")
    s.add_argument("--from-pool", action="store_true", help="(re)build from the species the model finds in the pool")
    s.add_argument("--min-confidence", type=float, default=0.5)
    s.add_argument("--max-species", type=int, default=50)
    s.add_argument("--add", nargs="+", metavar="LABEL", help="labels to add (e.g. 'Strix aluco_Tawny Owl')")
    s.add_argument("--remove", nargs="+", metavar="LABEL", help="labels to remove")
    s.add_argument("--name", help="name of the new label set")
    s.add_argument("--find", nargs="+", metavar="TEXT", help="look names up as annotators would (part of a name)")
    s.set_defaults(func=cmd_labels)

    s = sub.add_parser("annotators", help="experts: `annotators invite EMAIL` prints a sign-up link")
    s.add_argument("action", choices=["invite"])
    s.add_argument("email", help="the expert's e-mail address")
    s.set_defaults(func=cmd_annotators)

    s = sub.add_parser("agreement", help="how far experts agree, per species, and the clips to adjudicate")
    s.add_argument("--show", type=int, default=20, help="disagreements to list")
    s.set_defaults(func=cmd_agreement)
