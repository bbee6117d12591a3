"""Result records: one small JSON file per measured row, in benchmarks/results/<row>.json.

A record holds what a reader needs to trust a figure: the task, profile and exact command, every
numeric metric of every seed's metrics.json (with mean and sample sd), the time to result, and
where it was measured (hardware, threads, library versions, git commit, date). The newest record
of a row replaces the older one. README.md's and BENCHMARKS.md's result tables are generated from
these files by benchmarks/make_docs.py, so a figure is written once, by the command that measured it.
"""
from __future__ import annotations

import functools
import json
import os
import shlex
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = "exoml-result-1"

NOT_CODE = ("benchmarks/results", "README.md", "BENCHMARKS.md", "src/exoml/measured.json")  # records, and the
# docs make_docs.py writes from them: measuring, then rebuilding the docs, then measuring again changes no code


def dirty(root: Path) -> bool:
    """Whether the checkout at `root` has uncommitted changes to tracked files other than NOT_CODE (a
    measurement writes its record under benchmarks/results/ and make_docs.py the docs from the records:
    one run after another in the same checkout must not mark the next one's code as changed). False
    where git cannot tell."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                    *(f":(exclude){p}" for p in NOT_CODE)], cwd=root, capture_output=True,
                                   text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return False


def environment() -> dict:
    """Where and with what this process measures: hardware, threads, library versions (those a run's
    config.json records), git commit (with -dirty when tracked files other than the records and the
    docs made from them differ from it: see `dirty`), date,
    and the machine's 1-minute load. Take it before the first run: the load then says whether it was quiet."""
    import torch
    from exoml.toolkit.runs import environment as run_environment
    from exoml.toolkit.train import hardware
    env = run_environment()
    sha = (env.get("git_sha") or "")[:12]
    return {
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
        "versions": {"python": env["python"], **env["versions"]},
        "git_sha": sha + ("-dirty" if sha and dirty(Path(__file__).resolve().parents[1]) else ""),
        "date": time.strftime("%Y-%m-%d"),
        "load_at_start": round(os.getloadavg()[0], 2),
    }


def summarise(per_seed: list[dict]) -> dict[str, dict]:
    """{metric: {mean, sd, values}} over the seeds, for every numeric metric all seeds have."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {}
    for k in keys:
        values = [m[k] for m in per_seed if isinstance(m.get(k), (int, float))]
        if len(values) != len(per_seed):
            continue
        out[k] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                  "values": values}
    return out


def command_of(script: str, argv: list[str], where: tuple[str, ...] = ("--out", "--results")) -> str:
    """The command a record shows: `script` and its arguments less the options that say only where its
    files went (`where`, with their values): what was measured, not where this machine kept it."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in where:
            skip = True
        elif not a.startswith(tuple(f"{w}=" for w in where)):
            kept.append(a)
    return f"python benchmarks/{script} " + shlex.join(kept)


def split_task_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the script's own arguments, the task flags after `--`): `measure.py TASK ... -- --val-size 0`."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def write(row: str, task: str, profile: str, command: str, seeds: list[int], per_seed: list[dict],
          folder: Path = RESULTS, env: dict | None = None, **extra) -> Path:
    """Write (atomically) and return benchmarks/results/<row>.json. `env`: environment() taken
    before the runs (taken now if not given)."""
    from exoml.toolkit.runs import atomic_write_text
    record = {"format": FORMAT, "row": row, "task": task, "profile": profile, "command": command, "seeds": seeds,
              "metrics": summarise(per_seed), **(env or environment()), **extra}
    path = Path(folder) / f"{row}.json"
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def load_all(folder: Path = RESULTS) -> dict[str, dict]:
    """{row: record} for every record in the folder."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("format") == FORMAT:
            out[record["row"]] = record
    return out


NOT_SETTINGS = ("seed", "out")  # a run's config entries that say which run, not which recipe


def settings_of(cfg) -> dict:
    """A resolved Config as a run's config.json holds it, without NOT_SETTINGS."""
    import dataclasses
    from exoml.toolkit.runs import _jsonable
    return {k: _jsonable(v) for k, v in dataclasses.asdict(cfg).items() if k not in NOT_SETTINGS}


@functools.cache
def _resolved(task: str, argv: tuple[str, ...]) -> dict | None:
    """The settings `exoml run TASK ARGV` would take now, without NOT_SETTINGS, shaped as in a run's
    config.json; None if the flags are no longer the task's (argparse or a setting's check refuses them)."""
    import contextlib
    import io
    from exoml.errors import ExomlError
    from exoml.runner import task_config
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return settings_of(task_config(task, list(argv))[1])
    except (SystemExit, ExomlError):
        return None


def _profile_settings(task: str, profile: str) -> dict:
    plain = _resolved(task, ("--profile", profile))
    if plain is None:
        raise SystemExit(f"{task}: its profile {profile!r} does not resolve")
    return plain


def restates_profile(task: str, profile: str, flags: list[str]) -> bool:
    """Whether `--profile PROFILE FLAGS` takes exactly the profile's settings as they stand."""
    return _profile_settings(task, profile) == _resolved(task, ("--profile", profile, *flags))


def changed_settings(task: str, profile: str, settings: dict | None, flags: tuple[str, ...] = ()) -> dict[str, tuple]:
    """{setting: (the run's value, the value now)} where a run's settings (its config.json) differ from
    what `--profile PROFILE FLAGS` takes as the code stands. A setting the run predates counts as
    its Config default (settings are added switched off), one it has that no longer exists is not
    compared. Empty for a record without settings (taken at its word) and for flags that no longer resolve."""
    now = _resolved(task, ("--profile", profile, *flags)) if flags else _profile_settings(task, profile)
    if not settings or now is None:
        return {}
    then = _defaults(task) | settings
    return {k: (then[k], now[k]) for k in now if k in then and then[k] != now[k]}


@functools.cache
def _defaults(task: str) -> dict:
    """The task's Config defaults, shaped as in a run's config.json."""
    import dataclasses
    from exoml import tasks
    from exoml.toolkit.runs import _jsonable
    return {f.name: _jsonable(f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(tasks.get(task).config) if f.name not in NOT_SETTINGS}


def recipe_flags(record: dict) -> str:
    """The record's task flags without the ones that only name its profile (--profile P, --quick);
    none where the remaining flags only restate the profile's settings as they stand (e.g. a
    record's `--val-size 0` once that is the default)."""
    flags = record.get("task_flags", "").replace("--quick", "").replace(f"--profile {record['profile']}", "").strip()
    return "" if flags and restates_profile(record["task"], record["profile"], flags.split()) else flags


def recipe_groups(rows: list[dict]) -> list[list[dict]]:
    """The rows grouped by recipe (the same task, profile, task flags and resolved settings; rows that
    evaluate another row's model, `kind`, left out), each group's rows taken
    oldest first and sorted by seed; a row that repeats a seed already taken stays out: its seeds
    are not new seeds. Rows without task flags or seeds are left out."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("task_flags") is not None and r.get("seeds") and not r.get("kind"):
            same = json.dumps(r.get("settings"), sort_keys=True)  # a profile changed between rows: not one recipe
            groups.setdefault((r["task"], r["profile"], recipe_flags(r), same), []).append(r)
    out = []
    for group in groups.values():
        taken, seeds = [], []
        for r in sorted(group, key=lambda r: (r.get("date", ""), r["row"])):
            if not set(r["seeds"]) & set(seeds):
                taken.append(r)
                seeds += r["seeds"]
        out.append(sorted(taken, key=lambda r: min(r["seeds"])))
    return out


def recipe_rows(record: dict, groups: list[list[dict]]) -> list[dict]:
    """The rows of `groups` (recipe_groups) that measured `record`'s recipe; just the record where it
    stands alone or was left out of them."""
    return next((g for g in groups if record in g), [record])


def pooled(rows: list[dict]) -> dict:
    """One recipe's rows as one record-shaped dict: {"seeds", "metrics": {key: {mean, sd, values}}}
    for every metric that every row has for all its seeds."""
    seeds = [s for r in rows for s in r["seeds"]]
    metrics = {}
    for key in rows[0]["metrics"]:
        values = [v for r in rows for v in (r["metrics"].get(key) or {}).get("values", [])]
        if len(values) == len(seeds):
            metrics[key] = {"mean": statistics.fmean(values),
                            "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
    return {"seeds": seeds, "metrics": metrics}
