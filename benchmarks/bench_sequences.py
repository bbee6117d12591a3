"""The sequence tasks' recipes, several seeds each: IMDB test accuracy, electricity test MSE/RMSE.

Each run is a normal `exoml run` (a run folder under --out), each row is recorded in
benchmarks/results/<row>.json (benchmarks/records.py); the table (markdown) and all numbers
(JSON) go to <out>/bench_sequences.{md,json}. The targets are the issue's: IMDB >= 90.0% test
accuracy as the mean of 3 seeds (GPU recipe), protocol H at least 20% below the best naive
baseline's MSE, protocol D RMSE <= 360 kW.

    python benchmarks/bench_sequences.py --quick                    # smoke: every row, --quick, 1 seed
    python benchmarks/bench_sequences.py --rows imdb-gpu --seeds 3  # on a GPU: the IMDB target
    OMP_NUM_THREADS=1 python benchmarks/bench_sequences.py --rows imdb-cpu electricity-cpu --seeds 1

On a busy shared CPU, OMP_NUM_THREADS=1 is several times faster than torch's default threads.
Needs the datasets in the exoml cache (`exoml data import imdb|electricity ...`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402  (benchmarks/records.py: every measured row is recorded there)

# name: (task, flags, hardware, {metric: target as text})
ROWS = {
    "imdb-gpu": ("imdb", [], "gpu", {"accuracy": ">= 0.900"}),
    "imdb-cpu": ("imdb", ["--max-len", "200", "--embed-dim", "64", "--hidden", "64", "--layers", "1",
                          "--epochs", "3"], "cpu", {"accuracy": "> 0.80"}),
    "electricity-gpu": ("electricity", [], "gpu", {"H_mse_vs_best_baseline": "<= -0.20", "D_test_rmse_kw": "<= 360",
                                                   "O_test_rmse_kw": "< 0.619"}),
    "electricity-cpu": ("electricity", ["--train-stride-h", "3", "--layers", "1", "--epochs", "15", "--patience", "4"],
                        "cpu", {"H_mse_vs_best_baseline": "<= -0.20", "D_test_rmse_kw": "<= 360",
                                "O_test_rmse_kw": "< 0.619"}),
}


def _met(value: float, target: str) -> bool:
    op, bound = target.split()
    return {">=": value >= float(bound), ">": value > float(bound), "<=": value <= float(bound)}[op]


def run_row(name: str, seeds: list[int], out: Path, quick: bool, results_dir: Path = records.RESULTS) -> dict:
    from exoml.runner import execute, task_config
    task, flags, hw, targets = ROWS[name]
    per_seed, full = [], []
    for seed in seeds:
        spec, cfg = task_config(task, flags + ["--seed", str(seed), "--out", str(out)] + (["--quick"] if quick else []))
        path, metrics = execute(spec, cfg)
        full.append(metrics)
        per_seed.append({"seed": seed, "run": str(path), **{k: metrics[k] for k in targets}})
    records.write(f"{name}-quick" if quick else name, task, cfg.profile,
                  f"python benchmarks/bench_sequences.py --rows {name} --seeds {len(seeds)}" + (" --quick" if quick else ""),
                  seeds, full, folder=results_dir, task_flags=" ".join(flags))
    row = {"row": name, "task": task, "flags": " ".join(flags), "hardware": hw, "seeds": len(seeds), "runs": per_seed}
    for k, target in targets.items():
        vals = [r[k] for r in per_seed]
        mean = statistics.mean(vals)
        row[k] = {"mean": mean, "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "target": target,
                  "met": _met(mean, target)}
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per row")
    p.add_argument("--quick", action="store_true", help="every row with --quick and one seed (a smoke test)")
    p.add_argument("--out", type=Path, default=None, help="runs folder (default: a temporary folder)")
    p.add_argument("--results", type=Path, default=records.RESULTS, help="folder of the result records")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-sequences-"))
    seeds = [0] if args.quick else list(range(args.seeds))
    rows = [run_row(name, seeds, out, args.quick, args.results) for name in args.rows]
    lines = ["| row | hardware | seeds | metric | mean | std | target | met |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for k in ROWS[r["row"]][3]:
            v = r[k]
            lines.append(f"| {r['row']} | {r['hardware']} | {r['seeds']} | {k} | {v['mean']:.4g} | {v['std']:.2g} | "
                         f"{v['target']} | {'yes' if v['met'] else 'no'} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sequences.json").write_text(json.dumps(rows, indent=2))
    (out / "bench_sequences.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nresults: {out / 'bench_sequences.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
