"""The `exoml` command line.

    exoml list                                  the tasks (what each declares: exoml.tasks.contract)
    exoml run TASK [--flags]                    train + evaluate one task into runs/<task>/<timestamp>/
    exoml run all [--quick] [--device D]        every task in turn
    exoml predict TASK INPUT... [--run DIR]     use a trained run on one new input
    exoml tune TASK --trials N [--storage URL]  Optuna search on the validation split
    exoml compare TASK --optimizer adam sgd     variants side by side (table + learning curves)
    exoml report [--runs DIR]                   one HTML page over the latest run of every task
    exoml generate gan [--digit D] [--n N]      new samples from a trained generative run
    exoml export TASK [--run DIR] --format onnx a trained torch model as ONNX, verified (RUN/export/)
    exoml serve [--runs DIR] [--port 8000]      a local web app: one page per task with a complete run
    exoml data list|fetch|import|verify         datasets

Errors the user can act on print as one line on stderr (exit 2); an interrupted run exits 130.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .errors import ExomlError


def _sigterm(signum, frame):  # treat `kill` like Ctrl-C so the run is marked interrupted
    raise KeyboardInterrupt


# ------------------------------------------------------------------ list ----------

def cmd_list(_args) -> int:
    from .tasks import all_tasks
    rows = [("task", "exercise", "dataset", "model", "headline metric")]
    for t in all_tasks():
        rows.append((t.name, t.exercise, t.dataset, t.model, t.headline.label))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


# ------------------------------------------------------------------ run -----------

def cmd_run(args) -> int:
    from .runner import run_all, run_task
    if args.task != "all":
        run_task(args.task, args.rest)
        return 0
    return min(run_all(args.rest), 100)


# ------------------------------------------------------------------ predict -------

def cmd_predict(args) -> int:
    from . import tasks
    task = tasks.get(args.task)
    if task.predict is None:
        hint = f" (use a trained run with: exoml generate {task.name})" if task.generate is not None else ""
        raise ExomlError(f"task {args.task!r} takes no input to predict on{hint}")
    parser = argparse.ArgumentParser(prog=f"exoml predict {args.task}")
    parser.add_argument("--run", type=Path, help="run folder to use (default: the latest complete run)")
    parser.add_argument("--out", default="runs", help="runs folder searched for the latest run")
    task.add_predict_args(parser)
    return task.predict(parser.parse_args(args.rest)) or 0


# ------------------------------------------------------------------ tune, compare -

def cmd_tune(args) -> int:
    from .tune import tune
    if args.heartbeat < 1:
        raise ExomlError(f"--heartbeat must be at least 1 second (got {args.heartbeat})")
    tune(args.task, args.rest, trials=args.trials, timeout=args.timeout, storage=args.storage,
         heartbeat=args.heartbeat, study_name=args.study, space_file=args.space, metric=args.metric)
    return 0


def cmd_compare(args) -> int:
    from .compare import compare
    compare(args.task, args.rest, seeds=args.seeds)
    return 0


# ------------------------------------------------------------------ report --------

def cmd_report(args) -> int:
    from .htmlreport import build_report
    page = build_report(args.runs, args.out)
    print(f"report: {page}")
    return 0


# ------------------------------------------------------------------ generate ------

def cmd_generate(args) -> int:
    from . import tasks
    task = tasks.get(args.task)
    if task.generate is None:
        able = ", ".join(t.name for t in tasks.all_tasks() if t.generate is not None)
        raise ExomlError(f"task {args.task!r} does not generate anything (tasks that do: {able})")
    parser = argparse.ArgumentParser(prog=f"exoml generate {args.task}")
    parser.add_argument("--run", type=Path, help="run folder to use (default: the latest complete run)")
    parser.add_argument("--out", default="runs", help="runs folder searched for the latest run")
    task.add_generate_args(parser)
    return task.generate(parser.parse_args(args.rest)) or 0


# ------------------------------------------------------------------ export --------

def cmd_export(args) -> int:
    from .export import VerificationFailed, export, summary
    try:
        record, folder = export(args.task, args.run, args.out, args.format)
    except VerificationFailed as e:  # the model was exported but does not match: not a usage error
        print(f"exoml: error: {e}", file=sys.stderr)
        return 1
    print(summary(record, folder))
    return 0


# ------------------------------------------------------------------ serve ---------

def cmd_serve(args) -> int:
    try:
        import fastapi, python_multipart, uvicorn  # noqa: F401,E401  (the optional `serve` extra)
    except ImportError as e:
        raise ExomlError(f"exoml serve needs the `serve` extra ({e.name} is missing): "
                         "pip install -c requirements.lock -e '.[serve]'") from None
    if not 0 < args.port < 65536:
        raise ExomlError(f"--port must be between 1 and 65535 (got {args.port})")
    from .serve.app import serve
    serve(args.runs, args.host, args.port)
    return 0


# ------------------------------------------------------------------ data ----------

def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def cmd_data(args) -> int:
    from . import data
    if args.action == "list":
        print(f"data home: {data.data_home()}")
        print(f"{'dataset':14} {'cached':8} {'size':>8}  files / source")
        for ds in data.DATASETS.values():
            size = sum(p.stat().st_size for p in ds.processed.glob("*")) if ds.is_cached() else 0
            files = ", ".join(rf.name for rf in ds.files) or "bundled with scikit-learn"
            print(f"{ds.name:14} {'yes' if ds.is_cached() else 'no':8} {_human(size) if size else '-':>8}  "
                  f"{ds.title}: {ds.homepage}\n{'':33}{files}")
        return 0
    names = list(data.DATASETS) if args.name == "all" else [args.name]
    for name in names:
        data.get(name)  # unknown names fail before any work
    if args.action == "fetch":
        for name in names:
            meta = data.fetch(name)
            print(f"{name}: fetched and verified, counts {meta['counts']}")
    elif args.action == "import":
        if not args.paths:
            raise ExomlError("exoml data import needs at least one PATH (file or folder)")
        if args.name == "all" and not Path(args.paths[0]).is_dir():
            raise ExomlError(f"exoml data import all needs a folder laid out like shared/data: {args.paths[0]} is not one")
        found = 0
        for name in names:
            paths = [Path(p) for p in args.paths]
            if args.name == "all":  # PATH is a folder laid out like ../shared/data
                paths = data.default_local_paths(name, paths[0])
                if not paths and data.get(name).files:
                    print(f"{name}: nothing found under {args.paths[0]}, skipped")
                    continue
                root = Path(args.paths[0]).resolve()
                found += any(p.resolve().is_relative_to(root) for p in paths)  # not a system copy
            t0 = time.time()
            meta = data.import_(name, paths, subset=args.subset)
            tag = " (subset)" if meta.get("subset") else ""
            print(f"{name}: imported {meta['counts']}{tag} in {time.time() - t0:.1f}s")
        if args.name == "all" and not found:
            raise ExomlError(f"no dataset found under {args.paths[0]}: expected sub-folders laid out like "
                             "shared/data (mnist/, cifar10/, imdb/, ...)")
    elif args.action == "verify":
        bad = 0
        for name in names:
            if args.name == "all" and not data.get(name).is_cached() and data.get(name).files:
                print(f"{name}: not cached")
                continue
            try:
                rep = data.verify(name)
                print(f"{name}: ok, counts {rep['counts']}{' (subset)' if rep['subset'] else ''}"
                      + "".join(f"; {k}: {v}" for k, v in rep["raw_files"].items()))
            except ExomlError as e:
                bad += 1
                print(f"{name}: FAILED: {e}")
        return 2 if bad else 0
    return 0


# ------------------------------------------------------------------ main ----------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exoml", description="Ten classic machine-learning exercises, end to end.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the tasks").set_defaults(func=cmd_list)
    r = sub.add_parser("run", help="train and evaluate a task (exoml run TASK --help for its settings)",
                       add_help=False)
    r.add_argument("task")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run)
    pr = sub.add_parser("predict", help="use a trained run on one new input", add_help=False)
    pr.add_argument("task")
    pr.add_argument("rest", nargs=argparse.REMAINDER)
    pr.set_defaults(func=cmd_predict)
    t = sub.add_parser("tune", help="hyper-parameter search (Optuna) on the validation split",
                       epilog="other flags are the task's settings, fixed for every trial (e.g. --quick --epochs 3)")
    t.add_argument("task")
    t.add_argument("--trials", type=int, default=20, help="total finished trials wanted in the study")
    t.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    t.add_argument("--storage", default=None, help="SQLAlchemy URL (default: SQLite under the study folder)")
    t.add_argument("--heartbeat", type=int, default=30, metavar="S",
                   help="a running trial reports every S seconds; one silent for 3*S is failed and retried "
                        "(default: 30)")
    t.add_argument("--study", default=None, help="study name (default: 'default')")
    t.add_argument("--space", default=None, help="JSON/YAML search space overriding the task's default")
    t.add_argument("--metric", default=None, help="validation column to optimise (default: the task's)")
    t.set_defaults(func=cmd_tune)
    c = sub.add_parser("compare", help="train variants of a task and compare them in one table and figure",
                       epilog="other flags are the task's settings; one given several values makes variants")
    c.add_argument("task")
    c.add_argument("--seeds", type=int, default=1, help="runs per variant (mean ± std)")
    c.set_defaults(func=cmd_compare)
    rp = sub.add_parser("report", help="one HTML page over the latest run of every task")
    rp.add_argument("--runs", default="runs", help="the runs folder to read")
    rp.add_argument("--out", default=None, help="output folder (default: RUNS/report)")
    rp.set_defaults(func=cmd_report)
    g = sub.add_parser("generate", help="new samples from a trained generative run (exoml generate gan --n 64)",
                       add_help=False)
    g.add_argument("task")
    g.add_argument("rest", nargs=argparse.REMAINDER)
    g.set_defaults(func=cmd_generate)
    e = sub.add_parser("export", help="a trained torch model as ONNX, verified against PyTorch (RUN/export/)")
    e.add_argument("task", help="the task (one with a torch model; any other is told which tasks have one)")
    e.add_argument("--run", type=Path, help="run folder to export (default: the latest complete run)")
    e.add_argument("--out", default="runs", help="runs folder searched for the latest run")
    e.add_argument("--format", default="onnx", help="export format: onnx (the default)")
    e.set_defaults(func=cmd_export)
    sv = sub.add_parser("serve", help="a local web app over the runs: one page per task with a complete run")
    sv.add_argument("--runs", default="runs", help="the runs folder to read (nothing is written)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.set_defaults(func=cmd_serve)
    d = sub.add_parser("data", help="datasets: list, fetch, import, verify")
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="datasets, sources and cache state")
    for action, text in (("fetch", "download the official files (sha256-checked)"),
                         ("import", "import a local copy (files or folders)"),
                         ("verify", "re-check the cache against the official counts")):
        a = dsub.add_parser(action, help=text)
        a.add_argument("name", help="dataset name, or 'all'")
        if action == "import":
            a.add_argument("paths", nargs="*", help="files or folders (with 'all': one folder laid out like shared/data)")
            a.add_argument("--subset", action="store_true", help="accept fewer rows than the official dataset")
    d.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["run"], ["predict"]) and argv[1:2] in ([], ["-h"], ["--help"]):
        print(f"usage: exoml {argv[0]} TASK [--flags]   (tasks: `exoml list`; "
              f"settings: `exoml {argv[0]} TASK --help`; all tasks: `exoml run all [--quick]`)")
        return 0
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command in ("tune", "compare"):
        args.rest = unknown  # the task's own flags, parsed by the task's config parser
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread (tests)
        pass
    try:
        return args.func(args)
    except ExomlError as e:
        print(f"exoml: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("exoml: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `exoml data list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a folder that cannot be written, a full disk: the file and the reason, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"exoml: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
