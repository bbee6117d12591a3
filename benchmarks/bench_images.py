"""Time-to-accuracy of the image tasks: one row per task/recipe, several seeds each.

Each run is a normal `exoml run` (a run folder under --out), and each row is recorded in
benchmarks/results/<row>.json (benchmarks/records.py). Its metrics.json carries
`time_to_result_s` = training + test evaluation, timed with CUDA events on a GPU (the kernels
run asynchronously) and the wall clock on a CPU. Data loading, explore plots and the report are
not counted. The table (markdown) and all numbers (JSON) go to <out>/bench_images.{md,json}.

    python benchmarks/bench_images.py --quick                  # CPU smoke: every row, --quick, 1 seed
    python benchmarks/bench_images.py --rows mnist-cpu fashion-mnist-cpu --seeds 3    # the CPU targets
    python benchmarks/bench_images.py --seeds 5 --baseline     # on a GPU: every row + airbench side by side

Rows marked "gpu" are skipped on a CPU unless named with --rows (or with --quick).
`--baseline` also trains the PyPI `airbench` package's train94 (not a project dependency:
`pip install airbench torchvision`) on the same data in the same process, timed the same way.
Needs the datasets in the exoml cache (`exoml data import ...`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402  (benchmarks/records.py: every measured row is recorded there)

# name: (task, flags, hardware the target is for, accuracy target, seconds target or None)
ROWS = {
    "mnist-cpu": ("mnist", ["--profile", "cpu"], "cpu", 0.993, 30),
    "mnist-full": ("mnist", ["--profile", "full"], "any", 0.996, None),  # the accuracy target, on any hardware
    "mnist-h100": ("mnist", ["--profile", "full"], "gpu", 0.995, 5),  # the same recipe against the GPU time target
    "fashion-mnist-cpu": ("fashion-mnist", ["--profile", "cpu"], "cpu", 0.89, 120),
    "fashion-mnist-full": ("fashion-mnist", ["--profile", "full"], "any", 0.915, None),
    "cifar10": ("cifar10", ["--profile", "cpu", "--val-size", "0"], "gpu", 0.940, 3),  # the speed recipe, airbench94's time
    "cifar10-cpu": ("cifar10", ["--profile", "cpu", "--val-size", "0"], "cpu", 0.940, 360),
    "cifar10-full": ("cifar10", ["--profile", "full", "--val-size", "0"], "cpu", 0.950, 3600),
    "cifar100-cpu": ("cifar100", ["--profile", "cpu"], "cpu", 0.75, 3600),
    "cifar100-full": ("cifar100", ["--profile", "full"], "gpu", 0.80, 600),
}


def run_row(name: str, seeds: list[int], out: Path, quick: bool, results_dir: Path = records.RESULTS) -> dict:
    from exoml.runner import execute, task_config
    task, flags, hw, target, limit = ROWS[name]
    results, per_seed = [], []
    for seed in seeds:
        argv = flags + ["--seed", str(seed), "--out", str(out)] + (["--quick"] if quick else [])
        spec, cfg = task_config(task, argv)
        path, metrics = execute(spec, cfg)
        per_seed.append(metrics)
        results.append({"seed": seed, "accuracy": metrics["accuracy"], "seconds": metrics["time_to_result_s"],
                        "train_s": metrics["train_time_s"], "device": metrics["device"], "run": str(path)})
        print(f"  {name} seed {seed}: accuracy {metrics['accuracy']:.4f} in {metrics['time_to_result_s']:.2f} s "
              f"({metrics['device']})", flush=True)
    profile = cfg.profile
    records.write(f"{name}-quick" if quick else name, task, profile,
                  f"python benchmarks/bench_images.py --rows {name} --seeds {len(seeds)}"
                  + (f" --first-seed {seeds[0]}" if seeds[0] else "") + (" --quick" if quick else ""),
                  seeds, per_seed, folder=results_dir, task_flags=" ".join(flags))
    return summarise(name, " ".join(flags), hw, target, limit, results)


def summarise(name, flags, hw, target, limit, results) -> dict:
    accs, secs = [r["accuracy"] for r in results], [r["seconds"] for r in results]
    acc, sec = statistics.mean(accs), statistics.mean(secs)
    met = acc >= target and (limit is None or sec <= limit)
    return {"row": name, "flags": flags, "target_hw": hw, "seeds": len(results), "accuracy_mean": acc,
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "seconds_mean": sec,
            "target": f">= {target:.1%}" + (f" in <= {limit} s" if limit else ""), "met": met,
            "device": results[0]["device"], "runs": results}


def airbench_baseline(seeds: list[int], tmp: Path) -> dict | None:
    """The airbench package's train94 on our CIFAR-10 cache; None (with a note) where it cannot run."""
    try:
        import torch
        import airbench
    except ImportError as e:
        print(f"  baseline skipped: {e} (pip install airbench torchvision)")
        return None
    if not torch.cuda.is_available():
        print("  baseline skipped: airbench needs CUDA")
        return None
    import os
    from exoml import data
    c = data.load("cifar10")
    folder = tmp / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):  # the loader's file format; written (and read back) by us only
        torch.save({"images": torch.from_numpy(c[f"x_{split}"]), "labels": torch.from_numpy(c[f"y_{split}"]),
                    "classes": list(c.classes)}, folder / f"{split}.pt")
    cwd = os.getcwd()
    os.chdir(tmp)  # airbench opens 'cifar10/test.pt' relative to the current folder
    try:
        results = []
        test = airbench.CifarLoader(str(folder), train=False, batch_size=2000)
        for seed in [-1] + seeds:  # -1: a warm-up run (cudnn autotuning), not counted
            torch.manual_seed(max(seed, 0))
            train = airbench.CifarLoader(str(folder), train=True, batch_size=1024, aug=dict(flip=True, translate=2),
                                         altflip=True)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model = airbench.train94(train, verbose=False)
            acc = airbench.evaluate(model, test, tta_level=2)
            end.record()
            torch.cuda.synchronize()
            if seed >= 0:
                results.append({"seed": seed, "accuracy": acc, "seconds": start.elapsed_time(end) / 1000,
                                "device": torch.cuda.get_device_name()})
                print(f"  airbench94 seed {seed}: accuracy {acc:.4f} in {results[-1]['seconds']:.2f} s", flush=True)
    finally:
        os.chdir(cwd)
    return summarise("airbench94 (PyPI baseline)", "airbench.train94", "gpu", 0.94, 3, results)


def table(rows: list[dict]) -> str:
    out = ["| row | flags | device | seeds | accuracy (mean ± std) | time to result (s, mean) | target | met |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['row']} | `{r['flags']}` | {r['device']} | {r['seeds']} | {r['accuracy_mean']:.4f} ± "
                   f"{r['accuracy_std']:.4f} | {r['seconds_mean']:.2f} | {r['target']} ({r['target_hw']}) | "
                   f"{'yes' if r['met'] else 'no'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), help="rows to run (default: all that fit the device)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per row (first-seed, first-seed + 1, ...)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (to spread seeds over processes)")
    p.add_argument("--quick", action="store_true", help="every row with --quick and one seed (a CPU smoke run)")
    p.add_argument("--baseline", action="store_true", help="also time the airbench package (GPU)")
    p.add_argument("--out", default="runs", help="runs folder (the tables go there too)")
    p.add_argument("--results", type=Path, default=records.RESULTS, help="folder of the result records")
    args = p.parse_args(argv)
    import torch
    on_gpu = torch.cuda.is_available()
    seeds = [args.first_seed] if args.quick else list(range(args.first_seed, args.first_seed + args.seeds))
    names = args.rows or [n for n, r in ROWS.items() if args.quick or on_gpu or r[2] != "gpu"]
    out = Path(args.out)
    rows, t0 = [], time.time()
    for name in names:
        print(f"[bench] {name}", flush=True)
        rows.append(run_row(name, seeds, out, args.quick, args.results))
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            base = airbench_baseline(seeds, Path(tmp))
        if base:
            rows.append(base)
    md = (f"Image tasks, time to result (training + test evaluation; "
          f"{'CUDA events' if on_gpu else 'wall clock'}), {time.strftime('%Y-%m-%d')}, "
          f"command: `python benchmarks/bench_images.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
          f"{' (QUICK smoke profile: not a measurement of the recipes)' if args.quick else ''}\n\n{table(rows)}\n")
    from exoml.toolkit.runs import atomic_write_text
    atomic_write_text(out / "bench_images.md", md)
    atomic_write_text(out / "bench_images.json", json.dumps(rows, indent=2) + "\n")
    print("\n" + md + f"\n({time.time() - t0:.0f} s; tables in {out}/bench_images.md, .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
