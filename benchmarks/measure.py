"""Measure one task's recipe over several seeds and record it in benchmarks/results/<row>.json.

    python benchmarks/measure.py mnist --profile cpu --seeds 3
    python benchmarks/measure.py cifar10 --profile full --row cifar10-full -- --val-size 0   # task flags after --
    python benchmarks/measure.py boston

Each seed is a normal `exoml run` (its run folder under --out, else in a temporary folder removed
at the end). Task flags after `--` name a variant of the recipe: give it a --row name. The
record keeps every numeric metric of every seed (mean, sd, values), the wall time of each run, the
exact command, hardware, threads, library versions, git commit and date; README.md and
BENCHMARKS.md are regenerated from the records with `python benchmarks/make_docs.py`.
Needs the datasets in the exoml cache (`exoml data import ...`).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402  (benchmarks/records.py, beside this script)


def measure(task: str, flags: list[str], seeds: list[int], out: Path, done=None) -> tuple[str, list[dict], dict]:
    """(resolved profile, one metrics dict per seed with its wall time added, the resolved settings
    as config.json holds them, without seed and output folder). `done(profile, per_seed, settings)`
    is called after every seed, so a long measurement stopped part-way still records its seeds."""
    from exoml.runner import execute, task_config
    per_seed, profile, settings = [], "", {}
    for seed in seeds:
        spec, cfg = task_config(task, flags + ["--seed", str(seed), "--out", str(out)])
        profile = cfg.profile
        settings = records.settings_of(cfg)
        t0 = time.perf_counter()
        path, metrics = execute(spec, cfg)
        metrics = {**metrics, "wall_s": round(time.perf_counter() - t0, 2)}
        per_seed.append(metrics)
        print(f"[measure] {task} seed {seed}: {path}", flush=True)
        if done is not None:
            done(profile, per_seed, settings)
    return profile, per_seed, settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, task_flags = records.split_task_flags(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task")
    p.add_argument("--profile", default=None, help="the task's profile (default: the task's default)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds: first-seed, first-seed + 1, ...")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--row", default=None, help="record name (default: TASK-PROFILE)")
    p.add_argument("--out", type=Path, default=None, help="runs folder (default: a temporary folder)")
    p.add_argument("--results", type=Path, default=records.RESULTS, help="folder of the records")
    args = p.parse_args(own)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if task_flags and not args.row and task_flags != ["--quick"]:
        p.error("give --row NAME when task flags follow --: the row TASK-PROFILE is the recipe as it is")
    flags = (["--profile", args.profile] if args.profile else []) + task_flags
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    command = records.command_of("measure.py", own) + (" -- " + shlex.join(task_flags) if task_flags else "")
    env = records.environment()  # before the first run: its load says whether the machine was quiet

    def record(profile: str, per_seed: list[dict], settings: dict) -> Path:  # the seeds measured so far
        return records.write(args.row or f"{args.task}-{profile}", args.task, profile, command,
                             seeds[:len(per_seed)], per_seed, folder=args.results, env=env,
                             task_flags=shlex.join(flags), settings=settings)
    with tempfile.TemporaryDirectory(prefix=f"measure-{args.task}-") as tmp:  # runs kept only with --out
        path = record(*measure(args.task, flags, seeds, args.out or Path(tmp), done=record))
    summary = records.load_all(args.results)[path.stem]["metrics"]
    shown = [k for k in ("accuracy", "time_to_result_s", "wall_s") if k in summary] or list(summary)[:4]
    print("\n".join(f"{k}: {summary[k]['mean']:.4g} ± {summary[k]['sd']:.2g} (seeds {seeds})" for k in shown))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
