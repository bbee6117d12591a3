"""README.md's results table and BENCHMARKS.md's per-task tables, generated from the result records.

    python benchmarks/make_docs.py           # rewrite the generated parts of both files
    python benchmarks/make_docs.py --check   # exit 1 if a committed file differs (the test suite runs this)

Only the parts between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` are written; the
prose around them is edited by hand. Every figure in those parts comes from a record in
benchmarks/results/ (written by benchmarks/measure.py; the side-by-side comparison's in
benchmarks/results/peers/, written by benchmarks/bench_peers.py; `exoml run all`'s in
benchmarks/results/all/, written by benchmarks/measure_all.py), so a figure cannot drift from its record.
README.md's targets table judges the records against benchmarks/targets.py.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import records  # noqa: E402

# Columns shown beside each task's headline metric (the headline itself comes from the task's
# contract): (metrics.json key, label, format).
EXTRA: dict[str, list[tuple[str, str, str]]] = {
    "boston": [("ols_test_r2", "OLS test R²", "f4"),
               ("engineered_cv_r2_mean", "engineered R², nested repeated k-fold CV (mean over folds)", "f4"),
               ("engineered_cv_r2_std", "its sd over folds", "f4"),
               ("ols_cv_r2_mean", "OLS R², same folds", "f4"), ("ols_cv_r2_std", "its sd over folds", "f4")],
    "imdb": [("f1", "F1", "f3")],
    "iris": [("accuracy", "matched accuracy", "pct2")],
    "kddcup": [("A_autoencoder_f1_std", "its sd over A's splits", "f4"), ("A_seeds", "A's splits", "f0"),
               ("A_autoencoder_roc_auc_mean", "A AUROC", "f4"), ("A_autoencoder_pr_auc_mean", "A AUPRC", "f4"),
               ("A_untrained_autoencoder_f1_mean", "A F1, untrained autoencoder", "f4"),
               ("A_isolation_forest_default_f1_mean", "A F1, default Isolation Forest", "f4"),
               ("B_f1", "protocol B F1", "f4"), ("B_autoencoder_recall_r2l", "B r2l recall, autoencoder", "f4"),
               ("B_knn_recall_r2l", "B r2l recall, kNN", "f4")],
    "gan": [("confident_share", "judged with confidence ≥ 0.9", "pct1"),
            ("confident_share_real_test", "real test digits, same judge", "pct1"),
            ("class_share_min", "rarest digit", "pct1"), ("class_share_max", "commonest digit", "pct1"),
            ("inception_score", "Inception-style score (judge)", "f2"),
            ("inception_score_real_test", "real test digits' score", "f2")],
    "electricity": [("D_test_rmse_kw", "protocol D weekly RMSE (kW)", "f1"),
                    ("O_test_rmse_kw", "protocol O one-hour RMSE (kW)", "f3"),
                    ("O_persistence_rmse_kw", "its persistence baseline", "f3")],
}
TIME_KEYS = (("time_to_result_s", "training + test evaluation"), ("train_time_s", "training"),
             ("train_s", "training"), ("wall_s", "whole run"), ("elapsed_s", "whole run"))


def key_format(key: str) -> str:
    if "accuracy" in key:
        return "pct2"
    if "share" in key:
        return "pct1"
    return "f2" if key == "fid" else "f3" if "mse" in key else "f4"


def shown() -> dict[str, list[tuple[str, str, str]]]:
    """{task: [(key, label, format)]}: the contract's headline first, then EXTRA, in the registry's order."""
    from exoml.tasks import get, names
    out = {}
    for name in names():
        head = get(name).headline
        out[name] = [(head.key, head.label, key_format(head.key))] + EXTRA.get(name, [])
    return out


def task_meta() -> dict[str, dict]:
    """{task: model, reference} as each task declares them."""
    from exoml.tasks import get, names
    return {name: {"model": get(name).model, "reference": get(name).reference.text} for name in names()}


def fmt(value: float, kind: str) -> str:
    if kind == "pct2":
        return f"{100 * value:.2f}%"
    if kind == "pct1":
        return f"{100 * value:.1f}%"
    return f"{value:.{int(kind[1:])}f}"


def result(record: dict, key: str, kind: str) -> str:
    m = record["metrics"].get(key)
    if m is None:
        return "—"
    n = len(m["values"])
    if n > 1:
        sd = fmt(m["sd"], kind).rstrip("%") + (" pts" if kind.startswith("pct") else "")
        return f"**{fmt(m['mean'], kind)}** ± {sd} ({n} seeds)"
    return f"**{fmt(m['mean'], kind)}** (1 seed)"


def timed(record: dict, keys=TIME_KEYS) -> tuple[float, str] | None:
    """(mean seconds, what was timed) of the record's first time metric among `keys`."""
    for key, what in keys:
        m = record["metrics"].get(key)
        if m and m.get("values"):
            return m["mean"], what
    return None


def seconds(record: dict) -> float:
    """The record's time in seconds: its whole run where timed, else its first time metric."""
    found = timed(record, (("wall_s", "whole run"),)) or timed(record)
    return found[0] if found else 0.0


def duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def time_text(record: dict) -> str:
    if record.get("time_text"):
        return record["time_text"]
    found = timed(record)
    if found is None:
        return "—"
    s, what = found
    return f"{duration(s)} ({what}, mean)"


def hardware(record: dict) -> str:
    threads = record.get("threads")
    return f"{record['hardware']}" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")


def headline_record(task: str, recs: dict[str, dict]) -> dict | None:
    """The task's row in the README: its default recipe (the full one) if measured, else its CPU
    profile, else its newest non-quick row."""
    from exoml.tasks import get
    mine = {r["row"]: r for r in recs.values() if r["task"] == task and r["profile"] != "quick" and not r.get("kind")}
    for row in (f"{task}-{get(task).default_profile}", f"{task}-cpu"):
        if row in mine:
            return mine[row]
    return max(mine.values(), key=lambda r: r["date"], default=None)


def footnote(record: dict) -> str:
    return " †" if record.get("provenance") else ""


def readme_table(recs: dict[str, dict]) -> str:
    meta = task_meta()
    lines = ["| task | model | metric | ours: mean ± sd (seeds) | published reference | hardware | time | command |",
             "|---|---|---|---|---|---|---|---|"]
    groups = records.recipe_groups(list(recs.values()))
    for task, columns in shown().items():
        key, label, kind = columns[0]
        r = headline_record(task, recs)
        if r is None:
            lines.append(f"| `{task}` | {meta[task]['model']} | {label} | not measured | {meta[task]['reference']} "
                         f"| — | — | — |")
            continue
        rows = records.recipe_rows(r, groups)  # the recipe measured on other seeds too: all of them
        figures = records.pooled(rows) if len(rows) > 1 else r
        hosts = list(dict.fromkeys(hardware(x) for x in rows))
        took = time_text(figures) if len(hosts) == 1 else \
            time_text(max(rows, key=seconds)) + " on the slowest host"  # no mean over different machines
        commands = " + ".join(f"`{x['command']}`" for x in rows)
        lines.append(f"| `{task}` | {meta[task]['model']} | {label} | {result(figures, key, kind)}"
                     f"{footnote(next((x for x in rows if x.get('provenance')), r))} | {meta[task]['reference']} | "
                     f"{'; '.join(hosts)} | {took} | {commands} |")
    if any(r.get("provenance") for r in recs.values()):
        lines.append("\n† a transcribed record: measured with the command shown, its figures copied into "
                     "benchmarks/results/ by hand; re-measure with `python benchmarks/measure.py`.")
    return "\n".join(lines)


def quick_table(recs: dict[str, dict]) -> str:
    """The seconds-long smoke profile of every task: it shows the pipeline works, not what recipes reach."""
    lines = ["| task | metric (quick profile, a subsample) | value | whole run | hardware | date, commit |",
             "|---|---|---|---|---|---|"]
    for task, columns in shown().items():
        key, label, kind = columns[0]
        r = recs.get(f"{task}-quick")
        if r is None or key not in r["metrics"]:
            lines.append(f"| `{task}` | {label} | not run | — | — | — |")
            continue
        wall = r["metrics"].get("wall_s", {}).get("mean")
        lines.append(f"| `{task}` | {label} | {fmt(r['metrics'][key]['mean'], kind)} | "
                     f"{f'{wall:.1f} s' if wall is not None else '—'} | {hardware(r)} | {r['date']}, {r.get('git_sha')} |")
    return "\n".join(lines)


def task_table(task: str, recs: dict[str, dict]) -> str:
    mine = sorted((r for r in recs.values() if r["task"] == task and r["profile"] != "quick" and not r.get("kind")),
                  key=lambda r: r["row"])
    if not mine:
        return "Not measured yet."
    columns = shown()[task]
    head = "| row | " + " | ".join(label for _, label, _ in columns) + " | time | hardware | date, commit | command |"
    lines = [head, "|" + "---|" * (len(columns) + 5)]
    for r in mine:
        cells = [result(r, key, kind) for key, _, kind in columns]
        commit = r.get("git_sha") or "not recorded"
        lines.append(f"| {r['row']}{footnote(r)} | " + " | ".join(cells) + f" | {time_text(r)} | {hardware(r)} | "
                     f"{r['date']}, {commit} | `{r['command']}` |")
    notes = [f"- {r['row']}: {r['note']}" + (f" ({r['provenance']})" if r.get("provenance") else "")
             for r in mine if r.get("note") or r.get("provenance")]
    notes += pooled_notes(mine, columns)
    return "\n".join(lines + ([""] + notes if notes else []))


def pooled_notes(mine: list[dict], columns) -> list[str]:
    """One note per recipe measured in several rows over different seeds (records.recipe_groups): its
    figures over all those seeds together, with the hosts and commits they came from."""
    notes = []
    for rows in records.recipe_groups(mine):
        if len(rows) < 2:
            continue
        pool = records.pooled(rows)
        figures = "; ".join(f"{label} {result(pool, key, kind)}" for key, label, kind in columns
                            if key in pool["metrics"])
        where = "; ".join(f"seeds {', '.join(map(str, r['seeds']))}: {hardware(r)}, {r['date']}, "
                          f"{r.get('git_sha') or 'commit not recorded'}" for r in rows)
        if figures:
            notes.append(f"- {' + '.join(r['row'] for r in rows)} (one recipe, seeds "
                         f"{', '.join(map(str, sorted(pool['seeds'])))}): {figures} ({where})")
    return notes


def measured_times(recs: dict[str, dict], run_all: list[dict] = ()) -> str:
    """exoml/measured.json: {task: {profile: [{time, seconds, hardware, kind, date, row[, result]}, ...]}},
    what `exoml run` prints at its start ("it took ...") and `--help` shows beside each profile: per
    kind of machine (exoml.toolkit.train.machine_kind: the GPU, or the CPU's vector kernels and cores)
    the newest measurement, the newest kind first. Only records of a profile's settings as they stand
    (no flags beyond ones that restate them), and the tasks that `exoml run all` ran with no flags
    (`run_all`: measure_all.py's records) with their profile's settings as they stand."""
    from exoml.tasks import get
    from exoml.toolkit.train import machine_kind

    def reached(task: str, profile: str, record: dict) -> str:
        """The headline as measured ("test accuracy 94.06% ± 0.04 pts (3 seeds)"); none for the quick
        profile, whose figures come from a subsample."""
        (key, label, kind), *_ = shown()[task]
        return "" if profile == "quick" or key not in record["metrics"] else \
            f"{label} {result(record, key, kind).replace('**', '')}"

    timed_runs = []  # (date, row, task, profile, whole-run seconds or None, time text, hardware, kind, seconds, result)
    groups = records.recipe_groups(list(recs.values()))
    for r in recs.values():
        if (r.get("kind") or records.recipe_flags(r) or r["profile"] not in get(r["task"]).profiles
                or records.changed_settings(r["task"], r["profile"], r.get("settings"))):
            continue
        wall = timed(r, (("wall_s", "whole run"),))
        timed_runs.append((r["date"], r["row"], r["task"], r["profile"], wall[0] if wall else None, time_text(r),
                           hardware(r), machine_kind(r["hardware"]),
                           seconds(r),  # the result over every seed of the recipe, its time this row's
                           reached(r["task"], r["profile"], records.pooled(records.recipe_rows(r, groups)))))
    for r in run_all:
        if r["command"] != "exoml run all":  # flags given: not the defaults as they stand
            continue
        for t in r["tasks"]:
            if (t["status"] == "complete" and t.get("seconds") and t["profile"] in get(t["task"]).profiles
                    and not records.changed_settings(t["task"], t["profile"], t.get("settings"))):
                one = {"metrics": {k: {"mean": v, "values": [v]} for k, v in t["metrics"].items()}}
                timed_runs.append((r["date"], r["row"], t["task"], t["profile"], t["seconds"], "", hardware(r),
                                   machine_kind(r["hardware"]), t["seconds"], reached(t["task"], t["profile"], one)))
    out: dict[str, dict[str, dict]] = {}  # {task: {profile: {kind: entry}}}
    for date, row, task, profile, wall, text, where, kind, secs, res in sorted(timed_runs, key=lambda x: x[:2]):
        took = (f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.0f} min") if wall else text
        profiles = get(task).profiles
        same = [p for p in profiles if dict(profiles[p].settings) == dict(profiles[profile].settings)]
        for p in same:  # e.g. a task whose cpu profile is its full recipe: one measurement times both
            kinds = out.setdefault(task, {}).setdefault(p, {})
            kinds.pop(kind or where, None)  # the newest of a kind wins, re-inserted: the dict's order is oldest first
            kinds[kind or where] = {"time": took, "seconds": round(secs, 1), "hardware": where, "kind": kind,
                                    "date": date, "row": row} | ({"result": res} if res else {})
    table = {task: {p: list(reversed(kinds.values())) for p, kinds in profiles.items()}
             for task, profiles in sorted(out.items())}
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def kinds_table(times: dict) -> str:
    """BENCHMARKS.md's table of each task's cpu profile (the default without a CUDA GPU) timed on each
    kind of CPU (`times`: measured_times' table), the commonest kind first. The times are as `exoml run`
    prints them, from different sources (a run-all task's run folder, a measure.py row's whole run):
    no ratios are drawn from them here."""
    from exoml.toolkit.train import is_cpu
    cpu = {task: {m["kind"]: m for m in profiles.get("cpu", []) if m["kind"] and is_cpu(m["hardware"])}
           for task, profiles in times.items()}
    count: dict[str, int] = {}
    for on in cpu.values():
        for kind in on:
            count[kind] = count.get(kind, 0) + 1
    kinds = sorted(count, key=lambda k: -count[k])
    if len(kinds) < 2:
        return "Measured on one kind of CPU only."
    lines = ["| task | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for task, on in cpu.items():
        cells = [f"{duration(on[k]['seconds'])} ({on[k]['row']})" if k in on else "not measured" for k in kinds]
        lines.append(f"| `{task}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def peers_blocks(folder: Path) -> tuple[str, str]:
    """(README.md's headline, BENCHMARKS.md's table) of the side-by-side records (bench_peers.py) in `folder`."""
    import bench_peers
    recs = bench_peers.load(folder)
    return bench_peers.headline(recs), bench_peers.table(recs) if recs else "Not measured yet."


def blocks(recs: dict[str, dict], run_all: list[dict], peers: Path | None = None,
           times: str | None = None) -> dict[str, dict[str, str]]:
    """{file: {generated block name: its content}}; `run_all`: the `exoml run all` records
    (measure_all.py); `peers`: the folder of the side-by-side records; `times`: measured_times(recs,
    run_all) where already made."""
    import measure_all
    import targets
    peers_headline, peers_table = peers_blocks(peers if peers is not None else records.RESULTS / "peers")
    kinds = kinds_table(json.loads(times or measured_times(recs, run_all)))
    return {"README.md": {"results": readme_table(recs), "targets": targets.table(recs),
                          "run-all": measure_all.headline(run_all),
                          "quick": quick_table(recs), "peers": peers_headline},
            "BENCHMARKS.md": {"run-all": measure_all.table(run_all), "kinds": kinds}
            | {f"results:{task}": task_table(task, recs) for task in shown()} | {"peers": peers_table}}


def render(text: str, parts: dict[str, str], name: str) -> str:
    for block, content in parts.items():
        pattern = re.compile(rf"(<!-- generated:{re.escape(block)} -->\n).*?(<!-- /generated:{re.escape(block)} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{name}: no <!-- generated:{block} --> ... <!-- /generated:{block} --> block")
        text = pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if a file is out of date")
    p.add_argument("--results", type=Path, default=records.RESULTS)
    p.add_argument("--root", type=Path, default=ROOT, help="folder holding README.md and BENCHMARKS.md")
    p.add_argument("--package", type=Path, default=ROOT / "src" / "exoml", help="folder of exoml/measured.json")
    args = p.parse_args(argv)
    import measure_all
    recs, run_all = records.load_all(args.results), measure_all.load(args.results / "all")
    stale, times = [], measured_times(recs, run_all)
    for name, parts in blocks(recs, run_all, args.results / "peers", times).items():
        path = args.root / name
        old = path.read_text()
        new = render(old, parts, name)
        if new != old:
            stale.append(name)
            if not args.check:
                path.write_text(new)
    table = args.package / "measured.json"
    if not table.exists() or table.read_text() != times:
        stale.append(str(table.relative_to(ROOT)) if table.is_relative_to(ROOT) else str(table))
        if not args.check:
            table.write_text(times)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run: python benchmarks/make_docs.py)")
        return 1
    print("up to date" if not stale else f"rewrote {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
