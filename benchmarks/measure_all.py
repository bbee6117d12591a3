"""`exoml run all` end to end: each task's result and time, and the whole command's, in one record.

    python benchmarks/measure_all.py                      # `exoml run all`, no flags: each task's default here
    python benchmarks/measure_all.py --row all-quick -- --quick   # flags after -- go to `exoml run all`
    python benchmarks/measure_all.py --collect runs       # record a finished `exoml run all` from its runs/ folder

The command runs `exoml run all` in a fresh process (`python -m exoml`, what the console script
runs), every task in its own run folder under --out (default: a temporary folder), and records in
benchmarks/results/all/<row>.json (default row: all-<profile>, or all-defaults with no --profile):
per task, its run folder's status, profile, headline metric (the task's contract) and the metrics
that its CPU target names, and its time from the run folder's start to its end; the whole command's
wall time; hardware, threads, library versions, git commit and date. --collect reads the newest run
of each task in a runs/ folder that `exoml run all` wrote on this machine (a run the command did not
time: the total is then the first task's start to the last task's end). BENCHMARKS.md's table and
README.md's line are generated from the records by benchmarks/make_docs.py.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import records  # noqa: E402  (benchmarks/records.py)
import targets  # noqa: E402  (benchmarks/targets.py)

RESULTS = records.RESULTS / "all"
FORMAT = "exoml-run-all-1"
ENDED = ("complete", "failed", "interrupted")  # a run folder's final states (status.json)
BUDGET_S = 3 * 3600  # what `exoml run all` with no flags may take on a 2-core CPU

# The targets a default CPU run is held to (benchmarks/targets.py, the `run_all` ones): {task:
# [(metrics.json key, ">=" or "<=", value)]}. Tasks not named there have no CPU target beyond their time.
CPU_TARGETS = targets.run_all_checks()


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def collect(runs: Path) -> list[dict]:
    """One entry per task, in `exoml run all`'s order, from the newest run folder of each task under
    `runs` (runs/<task>/<timestamp>/): status, profile, metrics, and seconds from its start to its end."""
    from exoml.tasks import get, names
    out = []
    for name in names():
        started = [(json.loads((p / "config.json").read_text()), p) for p in (runs / name).glob("*")
                   if (p / "config.json").is_file()]
        if not started:
            out.append({"task": name, "status": "not run"})
            continue
        config, path = max(started, key=lambda c: c[0]["started"])
        status = json.loads((path / "status.json").read_text()) if (path / "status.json").is_file() else {}
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        head = get(name).headline
        state = status.get("status", "unknown")
        entry = {"task": name, "status": state, "run": path.name, "profile": config["config"].get("profile"),
                 "git_sha": config.get("environment", {}).get("git_sha"), "started": config["started"],
                 "ended": status.get("time") if state in ENDED else None,
                 "headline": {"key": head.key, "label": head.label}, "metrics": numbers,
                 "settings": {k: v for k, v in config["config"].items() if k not in records.NOT_SETTINGS}}
        if entry["ended"]:
            entry["seconds"] = (_when(entry["ended"]) - _when(entry["started"])).total_seconds()
        if status.get("error"):
            entry["error"] = status["error"]
        checks = []
        for key, op, bound in CPU_TARGETS.get(name, []):
            value = numbers.get(key)
            checks.append({"key": key, "op": op, "value": bound,
                           "met": None if value is None else targets.met(value, op, bound)})
        entry["targets"] = checks
        out.append(entry)
    return out


def write(row: str, command: str, tasks: list[dict], wall_s: float | None, folder: Path, env: dict) -> Path:
    from exoml.toolkit.runs import atomic_write_text
    spans = [t for t in tasks if t.get("ended")]
    span = ((_when(max(t["ended"] for t in spans)) - _when(min(t["started"] for t in spans))).total_seconds()
            if spans else None)
    shas = {t["git_sha"] for t in tasks if t.get("git_sha")}
    if len(shas) == 1:  # the code that ran (a --collect'ed run may predate this checkout's commit)
        env = {**env, "git_sha": shas.pop()[:12]}
    record = {"format": FORMAT, "row": row, "command": command, "tasks": tasks,
              "wall_s": wall_s,            # the whole command (None: collected, not timed by this script)
              "span_s": span,              # the first task's start to the last task's end
              "budget_s": BUDGET_S, **env}
    path = Path(folder) / f"{row}.json"
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def load(folder: Path = RESULTS) -> list[dict]:
    recs = []
    for path in sorted(Path(folder).glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("format") == FORMAT:
            recs.append(r)
    return recs


def _duration(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.2f} h"


def _value(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if "accuracy" in key or "share" in key:
        return f"{100 * value:.2f}%"
    return f"{value:.2f}" if key == "fid" else f"{value:.4g}"


def _total(r: dict) -> float | None:
    """The record's time: the whole command where this script timed it, else the tasks' span."""
    return r["wall_s"] if r["wall_s"] is not None else r["span_s"]


def _completed(r: dict) -> str:
    return f"{sum(t['status'] == 'complete' for t in r['tasks'])} of {len(r['tasks'])}"


def _changed(r: dict, t: dict) -> str:
    """"val_size 5000, now 0" for a task of record `r` that ran settings its profile, with the flags
    the command gave, no longer takes; "" otherwise."""
    from exoml.tasks import get
    if t["status"] == "not run" or not t.get("profile") or t["profile"] not in get(t["task"]).profiles:
        return ""
    flags = tuple(shlex.split(r["command"])[3:])  # "exoml run all FLAGS"
    diff = records.changed_settings(t["task"], t["profile"], t.get("settings"), flags)
    return "; ".join(f"{k} {json.dumps(then)}, now {json.dumps(now)}" for k, (then, now) in diff.items())


def table(recs: list[dict]) -> str:
    """BENCHMARKS.md's block: one table per record, a row per task and the total."""
    if not recs:
        return "Not measured yet."
    parts = []
    for r in recs:
        lines = [f"`{r['row']}`: `{r['command']}`; {r['hardware']}, {r['threads']} threads; {r['date']}, "
                 f"{r['git_sha']}", "",
                 "| task | profile | status | headline metric | value | CPU target | met | time |",
                 "|---|---|---|---|---|---|---|---|"]
        for t in r["tasks"]:
            if t["status"] == "not run":
                lines.append(f"| `{t['task']}` | — | not run | — | — | — | — | — |")
                continue
            key = t["headline"]["key"]
            target = "; ".join(f"{x['key']} {x['op']} {_value(x['key'], x['value'])}"
                               + (f" ({_value(x['key'], t['metrics'].get(x['key']))})" if x["key"] != key else "")
                               for x in t["targets"]) or "—"
            verdict = ("—" if not t["targets"] else "yes" if all(x["met"] for x in t["targets"])
                       else "no" if all(x["met"] is not None for x in t["targets"]) else "unknown")
            lines.append(f"| `{t['task']}` | {t.get('profile') or '—'} | {t['status']} | {t['headline']['label']} | "
                         f"{_value(key, t['metrics'].get(key))} | {target} | {verdict} | {_duration(t.get('seconds'))} |")
        total = _total(r)
        done = total is not None and all(t["status"] == "complete" for t in r["tasks"])
        what = "the whole command" if r["wall_s"] is not None else "the first task's start to the last one's end"
        lines.append(f"| **all** | | {_completed(r)} complete | | | ≤ {_duration(r['budget_s'])} | "
                     f"{'yes' if done and total <= r['budget_s'] else 'no'} | **{_duration(total)}** ({what}) |")
        changed = [f"- `{t['task']}` ran settings its profile no longer has: {c}" for t in r["tasks"] if (c := _changed(r, t))]
        parts.append("\n".join(lines + ([""] + changed if changed else [])))
    return "\n\n".join(parts)


def headline(recs: list[dict]) -> str:
    """README.md's line: how long `exoml run all` took and how many tasks met their CPU targets."""
    if not recs:
        return "Not measured yet."
    out = []
    for r in recs:
        aimed = [t for t in r["tasks"] if t.get("targets")]
        hit = [t for t in aimed if all(x["met"] for x in t["targets"])]
        missed = ", ".join(f"`{t['task']}`" for t in aimed if t not in hit)
        changed = ", ".join(f"`{t['task']}` ({c})" for t in r["tasks"] if (c := _changed(r, t)))
        out.append(f"`{r['command']}` took **{_duration(_total(r))}** on {r['hardware']} ({r['date']}): "
                   f"{_completed(r)} tasks complete, "
                   f"{len(hit)} of {len(aimed)} at their CPU result target ("
                   + (f"missed: {missed}; " if missed else "") + "time limits: the targets table)."
                   + (f" Settings its profiles no longer have: {changed}." if changed else ""))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, flags = records.split_task_flags(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--row", default=None, help="record name (default: all-PROFILE, all-defaults without --profile)")
    p.add_argument("--out", type=Path, default=None, help="runs folder (default: a temporary folder)")
    p.add_argument("--collect", type=Path, default=None, metavar="RUNS",
                   help="record the runs that `exoml run all` wrote in RUNS instead of running it")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the records")
    args = p.parse_args(own)
    if args.collect is not None and flags:
        p.error("--collect records runs already made: give no flags after --")
    if args.collect is not None and not args.collect.is_dir():
        p.error(f"--collect: {args.collect} is not a folder")
    profile = next((flags[i + 1] for i, a in enumerate(flags[:-1]) if a == "--profile"),
                   next((a.split("=", 1)[1] for a in flags if a.startswith("--profile=")),
                        "quick" if "--quick" in flags else None))
    row = args.row or f"all-{profile or 'defaults'}"
    env = records.environment()
    if args.collect is not None:
        env.pop("load_at_start")  # taken now, after the runs: it says nothing about them
        tasks = collect(args.collect)
        path = write(row, "exoml run all", tasks, None, args.results, env)
    else:
        with tempfile.TemporaryDirectory(prefix="measure-all-") as tmp:
            runs = args.out or Path(tmp)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "exoml", "run", "all", *flags, "--out", str(runs)])
            wall = round(time.perf_counter() - t0, 1)
            tasks = collect(runs)
        path = write(row, shlex.join(["exoml", "run", "all", *flags]), tasks, wall, args.results, env)
        print(f"exoml run all exited with {proc.returncode} after {_duration(wall)}")
    print(table([json.loads(path.read_text())]))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
