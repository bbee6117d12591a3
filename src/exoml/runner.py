"""Build a task's settings and execute runs: what the CLI, tune, compare and the benchmarks share.

    task, cfg = task_config("mnist", ["--quick", "--seed", "1"])   # the task's flags, resolved
    path, metrics = execute(task, cfg)                              # one run folder, completed

Everything here reads the task's contract (exoml.tasks.contract.Task), never the module.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from .errors import ExomlError


def has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def default_profile(task) -> str:
    """The profile a run takes when none is given: the task's declared default (its full recipe)
    where a CUDA GPU is found, its CPU profile elsewhere (an Apple GPU counts as elsewhere: the full
    recipes are sized for a datacenter GPU). --help and the config builder take it from here."""
    from .tasks.contract import CPU
    if not has_cuda() and CPU in task.profiles:
        return CPU
    return task.default_profile


def measured_times(task: str, profile: str) -> list[dict]:
    """How long `exoml run TASK --profile PROFILE` took where it was measured, and what it reached: one
    {time, seconds, hardware, kind, date, row[, result]} per kind of machine (machine_kind), the newest
    first, from the result records (benchmarks/make_docs.py writes exoml/measured.json from them); none
    where that profile was never measured as it stands."""
    return _measured_table().get(task, {}).get(profile, [])


def measured_time(task: str, profile: str) -> dict | None:
    """The measured time (measured_times) of this kind of machine, with "here": True; else the newest
    one of its class (a CPU's on a CPU, a GPU's on a GPU, where there is one), with "here": False: a time
    from another kind of machine, a rough guide only. None where none was measured."""
    from .toolkit.train import hardware, is_cpu, machine_kind
    times = measured_times(task, profile)
    if not times:
        return None
    here = hardware()
    kind, cpu = machine_kind(here), is_cpu(here)
    same = next((m for m in times if kind is not None and m.get("kind") == kind), None)
    if same is not None:
        return {**same, "here": True}
    return {**next((m for m in times if is_cpu(m["hardware"]) == cpu), times[0]), "here": False}


@functools.cache
def _measured_table() -> dict:
    """exoml/measured.json, read once per process (--help asks for every profile of a task)."""
    import json
    from importlib import resources
    try:
        return json.loads(resources.files("exoml").joinpath("measured.json").read_text())
    except (OSError, ValueError):
        return {}


def _took(m: dict) -> str:
    return f"took {m['time']} on {m['hardware']} ({m['date']})"


def _this_kind() -> str:
    """This machine's kind (machine_kind), for a line saying a time was measured on another."""
    from .toolkit.train import hardware, machine_kind
    return machine_kind(hardware()) or hardware()


def announce(task, cfg, given: bool) -> str:
    """One line at the start of a run: which profile it took, why, and about how long it takes."""
    why = "as asked" if given else ("the default with a CUDA GPU" if has_cuda() else
                                    "the default without a CUDA GPU")
    m = measured_time(task.name, cfg.profile)
    if m is None:
        eta = "its time is not measured"
    else:
        eta = "it " + _took(m)
        if not m.get("here", True):
            eta += f"; not measured on this kind of machine ({_this_kind()})"
    others = ", ".join(p for p in task.profiles if p != cfg.profile)
    return f"[{task.name}] profile {cfg.profile} ({why}; others: {others}): {eta}"


def profile_help(task) -> dict[str, str]:
    """{profile: one line for --help}: what it is for and what it measured on each kind of machine
    (each flag's help shows the profiles' values)."""
    out = {}
    for name in task.profile_settings(default_profile(task)):
        p = task.profiles[name]
        took = "; ".join(f"took {m['time']} on {m['hardware']}, {m['date']}"
                         + (f": {m['result']}" if m.get("result") else "") for m in measured_times(task.name, name))
        out[name] = " - ".join(x for x in (p.about, f"measured: {p.measured}" if p.measured else "", took) if x) or name
    return out


def config_parser(task, prog: str = "exoml run") -> argparse.ArgumentParser:
    """The task's flags (one per setting, --quick, --config), help showing the resolved values."""
    from .toolkit.config import add_config_args
    parser = argparse.ArgumentParser(
        prog=f"{prog} {task.name}", description=f"{task.exercise}. Model: {task.model}. "
        f"Headline: {task.headline.label}; published: {task.reference.text} ({task.reference.source}).")
    add_config_args(parser, task.config, task.profile_settings(default_profile(task)), profile_help(task))
    parser.add_argument("--config", metavar="FILE.json", help="settings from a JSON file (over the profile; "
                        "flags win over it)")
    return parser


def task_config(name: str, argv: list[str], prog: str = "exoml run", defaults: dict | None = None):
    """(task, resolved Config) from the task's generated flags; `defaults` replace the Config's own
    defaults (a profile, a config file and the flags still win over them)."""
    from .toolkit.config import build_config
    from . import tasks
    task = tasks.get(name)
    parser = config_parser(task, prog)
    if prog == "exoml run":
        parser.add_argument("--resume", metavar="RUN_DIR", type=Path,
                            help="continue an interrupted run in its own folder, with its own settings")
    given = vars(parser.parse_args(argv))
    resume = given.pop("resume", None)
    profiles = task.profile_settings(default_profile(task))
    if resume is not None:  # the run's own settings, nothing else: not even its profile's, where a
        _interrupted_run(name, resume)  # setting added after the run started takes the Config's default
        cfg = build_config(task.config, {}, None, str(resume / "config.json"))
        cfg.out = str(resume.parent.parent)
        cfg.resume = resume  # not a setting: tells execute() to reopen this folder
        return task, cfg
    return task, build_config(task.config, given, profiles, given.pop("config", None), defaults)


def _interrupted_run(task: str, path: Path) -> None:
    import json
    try:
        info = json.loads((path / "config.json").read_text())
        status = json.loads((path / "status.json").read_text()).get("status")
    except (OSError, ValueError):
        raise ExomlError(f"{path} is not an exoml run folder") from None
    if info.get("task") != task:
        raise ExomlError(f"{path} is a run of {info.get('task')!r}, not of {task!r}")
    if status == "complete":
        raise ExomlError(f"{path} is already complete: nothing to resume")
    from .toolkit.runs import is_live
    if is_live(path):  # "running" and its writer alive; a "running" run whose process died resumes
        raise ExomlError(f"{path} is still being written by another process: wait for it or stop it")
    if not any(path.glob("checkpoint*.safetensors")):  # one per training run of the task
        raise ExomlError(f"{path} has no checkpoint (it stopped before its first epoch ended, or this task "
                         "does not checkpoint): start it again with `exoml run`")


def execute(task, cfg, out: str | Path | None = None, on_epoch=None) -> tuple[Path, dict]:
    """Run one configured task (a Task) in a new run folder; `on_epoch(row)` sees each history row too."""
    from contextlib import nullcontext
    from . import tasks
    from .toolkit import distributed
    from .toolkit.config import to_dict
    from .toolkit.runs import finish, new_run
    from .toolkit.train import pick_device, reuse_freed_memory
    if distributed.launched() and not task.distributed:
        trains = ", ".join(t.name for t in tasks.all_tasks() if t.distributed)
        raise ExomlError(f"{task.name} does not train data-parallel: run it without torchrun ({trains} do)")
    distributed.init(cfg.device)
    # tasks whose steps repeat a few big tensor shapes (the image nets, imdb): no fresh page-faulted mmap per step
    reuse = task.steady_shapes and pick_device(cfg.device).type == "cpu"
    resume = getattr(cfg, "resume", None)
    with reuse_freed_memory() if reuse else nullcontext(), \
            new_run(task.name, to_dict(cfg), out or cfg.out, resume=resume) as run:
        if run.writes:
            print(f"[{task.name}] run folder: {run.path}", flush=True)
        if on_epoch is not None:  # e.g. tune's pruning hook, after the row is safely in history.csv
            log = run.log_epoch

            def log_and_report(row):
                log(row)
                on_epoch(row)
            run.log_epoch = log_and_report
        metrics, report = task.run(cfg, run)
        finish(run, metrics, report)
    return run.path, metrics


def run_task(task: str, argv: list[str]) -> Path:
    """`exoml run TASK ...`: parse, run, print the headline numbers; returns the run folder."""
    spec, cfg = task_config(task, argv)
    return run_configured(spec, cfg, given=_profile_given(argv))


def run_configured(spec, cfg, given: bool) -> Path:
    """Announce (profile, why, measured time), run and report one task's resolved settings;
    `given`: the profile was asked for."""
    task = spec.name
    if getattr(cfg, "resume", None) is None:
        print(announce(spec, cfg, given=given), flush=True)
    path, metrics = execute(spec, cfg)
    if not metrics:  # a torchrun rank other than 0: rank 0 reports
        return path
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    first = {spec.headline.key: numbers.pop(spec.headline.key)} if spec.headline.key in numbers else {}
    shown = ", ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.4g}"
                      for k, v in list({**first, **numbers}.items())[:6])
    print(f"[{task}] done: {shown}\n[{task}] report: {path / 'report.md'}", flush=True)
    return path


def _profile_given(argv: list[str]) -> bool:
    return any(a in ("--quick", "--profile") or a.startswith("--profile=") or a == "--config" for a in argv)


def run_all(argv: list[str]) -> int:
    """`exoml run all ...`: every task in turn; one task's failure does not stop the others.
    The flags are checked against every task first, and the plan (each task's profile and its
    measured time) is printed before the first run. Returns the number of failed tasks."""
    if "-h" in argv or "--help" in argv:
        print(all_help(argv))
        return 0
    plan = all_plan(argv)
    print(plan_text(plan, argv), flush=True)
    failed, t0 = [], time.time()
    for i, (task, cfg) in enumerate(plan, 1):
        print(f"\n=== [{i}/{len(plan)}] {task.name} ({time.time() - t0:.0f}s elapsed) ===", flush=True)
        try:
            run_configured(task, cfg, given=_profile_given(argv))  # the settings the plan printed
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one task's failure must not stop the others
            failed.append((task.name, f"{type(e).__name__}: {e}"))
            print(f"[{task.name}] FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    print(f"\nran {len(plan)} tasks in {time.time() - t0:.0f}s: {len(plan) - len(failed)} ok, {len(failed)} failed")
    for task, err in failed:
        print(f"  {task}: {err}")
    return len(failed)


def all_plan(argv: list[str]) -> list:
    """[(task, resolved Config)] for `exoml run all ARGS`, every task parsed before any runs, so a
    flag that some task does not take stops the command at once, not hours into it."""
    import contextlib
    import io
    from .tasks import names
    if any(a == "--resume" or a.startswith("--resume=") for a in argv):
        raise ExomlError("exoml run all cannot resume: resume each stopped run with `exoml run TASK --resume RUN_DIR`")
    plan, rejected = [], []
    for name in names():
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                plan.append(task_config(name, argv))
        except SystemExit:  # argparse rejected a flag (its message is the last line it wrote)
            lines = err.getvalue().strip().splitlines()
            rejected.append((name, lines[-1].split("error: ", 1)[-1] if lines else "bad arguments"))
    if rejected:
        who = ", ".join(name for name, _ in rejected)
        raise ExomlError(f"exoml run all: {who} cannot take these flags ({rejected[0][1]}); "
                         f"give only flags every task takes (`exoml run all --help`), or run tasks one by one")
    return plan


def plan_text(plan: list, argv: list[str]) -> str:
    """What `exoml run all` will do: one line per task (profile, why, measured time) and the sum of
    the measured times."""
    given = _profile_given(argv)
    lines, total, unknown = [f"exoml run all: {len(plan)} tasks, one after the other"], 0.0, []
    elsewhere = False  # a time measured on another kind of machine only
    for task, cfg in plan:
        m = measured_time(task.name, cfg.profile)
        took = _took(m) + ("" if m.get("here", True) else " *") if m else "time not measured"
        lines.append(f"  {task.name:<14} {cfg.profile:<6} {took}")
        if m and m.get("seconds"):
            total += m["seconds"]
        else:
            unknown.append(task.name)
        elsewhere = elsewhere or bool(m and not m.get("here", True))
    why = "as asked" if given else ("each task's default with a CUDA GPU" if has_cuda()
                                    else "each task's default without a CUDA GPU")
    extra = " (other flags given: times may differ)" if any(
        a.startswith("--") and a not in ("--quick", "--profile", "--seed", "--out", "--device")
        and not a.startswith(("--profile=", "--seed=", "--out=", "--device=")) for a in argv) else ""
    lines.append(f"  profiles: {why}; measured times add up to {_duration(total)}"
                 + (f", plus {', '.join(unknown)} (not measured)" if unknown else "") + extra
                 + (f"; * not measured on this kind of machine ({_this_kind()})" if elsewhere else ""))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 5400
                                                     else f"{seconds / 3600:.1f} h")


def all_help(argv: list[str]) -> str:
    """`exoml run all --help`: what it does, the flags every task takes, and the plan."""
    from .tasks import all_tasks
    shared = None
    for task in all_tasks():
        flags = {o for a in config_parser(task)._actions for o in a.option_strings if o.startswith("--")}
        shared = flags if shared is None else shared & flags
    shared = sorted(shared - {"--help"})
    rest = [a for a in argv if a not in ("-h", "--help")]
    try:
        plan = plan_text(all_plan(rest), rest)
    except ExomlError as e:
        plan = str(e)
    return ("usage: exoml run all [flags every task takes]\n\n"
            "Every task in turn, each in its own run folder (runs/<task>/<timestamp>/); one task's failure does\n"
            "not stop the others, and the exit status is the number of tasks that failed.\n\n"
            f"flags every task takes: {' '.join(shared)}\n"
            "(a task's own settings: `exoml run TASK --help`)\n\n" + plan)
