"""Side by side: each exercise's well-known public recipe and exoml's, on the same machine, in one command.

    pip install -c requirements.lock -e ".[bench]"      # Keras 3 for the Keras references (torch backend)
    python benchmarks/bench_peers.py                    # every row (hours on a 2-core CPU)
    python benchmarks/bench_peers.py --rows iris boston --threads 2 --seed 0
    python benchmarks/bench_peers.py --smallest --results /tmp/peers    # every row in seconds: a check, not a measurement

One row per comparison (a reference against one exoml recipe): its test score and time, exoml's
final test score and time, the time exoml took to reach the reference's score, and the two ratios
(reference time / exoml time, reference time / exoml's time to reach). Each side runs in its own
fresh process with the same threads and seed, on the same imported dataset cache (`exoml data import
...`): the reference gets the raw arrays and does its own preprocessing, as its source does
(peers_keras.py, peers_torch.py, peers_plain.py; each cites its source). Times are wall-clock
seconds from loading the data to the test score, after the imports: for exoml, one `exoml run TASK
...` through exoml.runner.execute (data, explore figures, training, test evaluation, figures,
report: everything the console command does after parsing its flags), its per-epoch history rows
timestamped as they are logged; exoml's time to reach = the first epoch whose validation score
(history.csv) is at least the reference's test score, if its final test score is too (a task without
a per-epoch validation score: its whole run, if its final score reaches it). The image tasks train
on their whole training split by default, so the rows that read exoml's validation score hold out
5,000 images (`--val-size 5000`) for it. The GAN is compared at equal training time instead: the
reference trains for as long as exoml's GAN trained, and both are scored by the same judge (an exoml
mnist run trained first, not timed).

Every row is recorded in <results>/<row>.json (default benchmarks/results/peers/; hardware, threads,
seed, date, library versions, git commit, the command); BENCHMARKS.md's table and README.md's
headline are generated from those records by benchmarks/make_docs.py. --smallest records get their
own names (<row>-smallest) and are not shown there. A row that fails or cannot run here (no GPU, no
Keras) leaves an earlier record of it in place; the exit status is 1 if a row failed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import records  # noqa: E402  (benchmarks/records.py)

RESULTS = records.RESULTS / "peers"
FORMAT = "exoml-peers-1"


@dataclass(frozen=True)
class Row:
    task: str
    recipe: str                    # a function of peers_keras / peers_torch / peers_plain (RECIPES)
    reference: str                 # what a reader calls it
    source: str                    # where it is published
    metric: str                    # exoml's metrics.json key compared with the reference's value
    label: str
    kind: str = "pct2"             # how the value is shown: pct2 (percent), f4, kw (kW, one decimal)
    higher_is_better: bool = True
    exoml: tuple = ()              # exoml's flags (its recipe) for the full comparison
    exoml_small: tuple = ("--quick",)
    history: str | None = "val_accuracy"  # exoml's history column for the time to reach (None: none comparable)
    needs: str = ""                # keras | gpu
    same_model: str | None = None  # exoml metric that fits the reference's very model: must equal its value
    equal_time: bool = False       # compared at equal training time (the GAN), not by time to reach
    notes: tuple = field(default=())  # lines for the table's notes, beside the commands
    variant: str = ""              # README's label for a row that does not run exoml's default


# The image tasks train on their whole training split by default: the rows that read exoml's time to
# reach on its validation score hold 5,000 images out for it (and so does the GAN's judge, below).
HOLD_OUT = ("--val-size", "5000")

ROWS: dict[str, Row] = {
    "fashion-mnist": Row("fashion-mnist", "fashion_mnist", "TensorFlow basic classification (Keras MLP, 10 epochs)",
                         "https://www.tensorflow.org/tutorials/keras/classification", "accuracy", "test accuracy",
                         exoml=("--profile", "cpu", *HOLD_OUT), needs="keras"),
    "mnist-keras": Row("mnist", "mnist_convnet", "keras-io mnist_convnet (15 epochs, batch 128)",
                       "https://keras.io/examples/vision/mnist_convnet/", "accuracy", "test accuracy",
                       exoml=("--profile", "cpu", *HOLD_OUT), needs="keras"),
    "mnist-pytorch": Row("mnist", "pytorch_mnist", "pytorch/examples mnist (14 epochs, Adadelta)",
                         "https://github.com/pytorch/examples/blob/main/mnist/main.py", "accuracy", "test accuracy",
                         exoml=("--profile", "cpu", *HOLD_OUT)),
    "cifar10": Row("cifar10", "cifar10_cnn", "TensorFlow CNN tutorial (3 conv layers, 10 epochs)",
                   "https://www.tensorflow.org/tutorials/images/cnn", "accuracy", "test accuracy", needs="keras",
                   exoml=HOLD_OUT),
    # the same reference against the shortest schedule of exoml's speed recipe: one epoch instead of 8
    "cifar10-1-epoch": Row("cifar10", "cifar10_cnn", "TensorFlow CNN tutorial (3 conv layers, 10 epochs)",
                           "https://www.tensorflow.org/tutorials/images/cnn", "accuracy", "test accuracy",
                           needs="keras", exoml=("--profile", "cpu", "--epochs", "1", *HOLD_OUT),
                           exoml_small=("--quick", "--epochs", "1"), variant="not the default: `--epochs 1`",
                           notes=("not exoml's default: its speed recipe (`--profile cpu`) trained for one epoch "
                                  "instead of 8, its learning-rate decay spanning that epoch: how soon exoml reaches "
                                  "the tutorial's score (the cifar10 row runs the default)",)),
    "cifar10-airbench": Row("cifar10", "airbench94", "airbench94 (PyPI airbench, train94)",
                            "https://github.com/KellerJordan/cifar10-airbench", "accuracy", "test accuracy",
                            exoml=("--profile", "cpu"), history=None, needs="gpu"),
    # exoml's cpu profile (a 2 x 128 bidirectional minGRU over whole reviews, 4 epochs): the full recipe
    # (a 2 x 256 BiLSTM, 10 epochs) ran 1 h 46 min on the 2-core AVX-512 CPU (the imdb-full record)
    "imdb": Row("imdb", "imdb_bilstm", "keras-io bidirectional LSTM (2 epochs)",
                "https://keras.io/examples/nlp/bidirectional_lstm_imdb/", "accuracy", "test accuracy", needs="keras",
                exoml=("--profile", "cpu")),
    "gan": Row("gan", "tf_dcgan", "TensorFlow DCGAN tutorial (in PyTorch), both unconditional, equal training time",
               "https://www.tensorflow.org/tutorials/generative/dcgan", "confident_share",
               "share of digits the judge classifies with confidence >= 0.9", history=None, equal_time=True,
               exoml=("--conditional", "false"), exoml_small=("--quick", "--conditional", "false", "--epochs", "1",
                                                               "--n-train", "1280", "--n-eval", "500"),
               notes=("exoml's GAN unconditional, as the reference is (`--conditional false`; its default is "
                      "class-conditional)",)),
    "electricity": Row("electricity", "electricity_weekly", "Brownlee's weekly encoder-decoder LSTM (univariate)",
                       "https://machinelearningmastery.com/how-to-develop-lstm-models-for-multi-step-time-series-"
                       "forecasting-of-household-power-consumption/", "D_test_rmse_kw",
                       "weekly RMSE over the 46 test weeks of 2010 (kW)", kind="kw", higher_is_better=False,
                       exoml=("--protocols", "D"), exoml_small=("--quick", "--protocols", "D"), history=None,
                       needs="keras"),
    "iris": Row("iris", "iris_kmeans", "scikit-learn KMeans(n_clusters=3)",
                "https://scikit-learn.org/stable/modules/generated/sklearn.cluster.KMeans.html", "ari",
                "adjusted Rand index (K-means, k=3, raw features)", kind="f4", history=None, same_model="ari"),
    "boston": Row("boston", "boston_ols", "scikit-learn LinearRegression (80/20, random_state=42)",
                  "https://scikit-learn.org/stable/modules/generated/sklearn.linear_model.LinearRegression.html",
                  "engineered_test_r2", "test R² (exoml: engineered ridge)", kind="f4", history=None,
                  same_model="ols_test_r2"),
    "kddcup-iforest": Row("kddcup", "kdd_isolation_forest", "Isolation Forest, scikit-learn defaults (sanity baseline)",
                          "https://arxiv.org/abs/1802.04865 (DAGMM protocol)", "A_f1",
                          "F1, DAGMM protocol (normal traffic is the anomaly)", kind="f4",
                          exoml=("--protocols", "A"), exoml_small=("--quick", "--protocols", "A"), history=None,
                          notes=("exoml's own run has the same baseline (its `isolation_forest_default` row, "
                                 "IsolationForest() on the same splits) at a slightly different F1: it feeds "
                                 "standardised columns in its own order, and the forest draws its features and cut "
                                 "points at random, so another column order grows another forest",)),
    "kddcup-untrained-ae": Row("kddcup", "kdd_untrained_autoencoder", "untrained autoencoder (sanity baseline)",
                               "https://arxiv.org/abs/1802.04865 (DAGMM protocol)", "A_f1",
                               "F1, DAGMM protocol (normal traffic is the anomaly)", kind="f4",
                               exoml=("--protocols", "A"), exoml_small=("--quick", "--protocols", "A"), history=None,
                               notes=("the reference scales DAGMM's way (min-max); on that input the untrained "
                                      "network's reconstruction error ranks the normal rows lowest, worse than random "
                                      "flags; with standardised columns the same untrained network ranks them well "
                                      "(exoml's run table: its `untrained_autoencoder` row), so that baseline's score "
                                      "comes from the scaling, not from training",)),
}
# The GAN's judge: an exoml mnist network trained without label smoothing (its confidence means what it
# says) on the 55,000 training digits the gan row's judge was trained on; trained once, before the GAN,
# and not timed. It classifies each digit once (no test-time shifts), so its test accuracy is taken so too.
JUDGE = ("--profile", "cpu", "--label-smoothing", "0", "--tta", "none", *HOLD_OUT)
JUDGE_SMALL = ("--quick", "--label-smoothing", "0")


# ---------------------------------------------------------------- one side, in a child process -------

def _child(spec_path: str) -> int:
    """Run one side (spec["side"]: exoml | reference) and write its result to spec["result"]."""
    spec = json.loads(Path(spec_path).read_text())
    import torch
    torch.set_num_threads(spec["threads"])
    if spec["side"] == "exoml":
        out = _run_exoml(spec)
    else:
        import peers_keras
        import peers_plain
        import peers_torch
        recipes = {**peers_keras.RECIPES, **peers_torch.RECIPES, **peers_plain.RECIPES}
        out = recipes[spec["recipe"]](spec["seed"], spec["small"], **spec.get("kwargs", {}))
    from exoml.toolkit.runs import write_json
    write_json(Path(spec["result"]), out)
    return 0


def _run_exoml(spec: dict) -> dict:
    """One exoml run through exoml.runner.execute, timed from building its settings to its result;
    every history row stamped with the seconds since that start."""
    from exoml.runner import execute, task_config
    stamped = []
    t0 = time.perf_counter()
    task, cfg = task_config(spec["task"], spec["flags"] + ["--seed", str(spec["seed"]), "--out", spec["out"]])
    path, metrics = execute(task, cfg, on_epoch=lambda row: stamped.append({**row, "t_s": time.perf_counter() - t0}))
    seconds = time.perf_counter() - t0
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"metrics": numbers, "seconds": seconds, "history": stamped, "run": str(path)}


def _side(spec: dict, tmp: Path, threads: int) -> dict:
    """Run a side in a fresh process (same threads for both sides); its result, or {"error": last lines}."""
    n = len(list(tmp.glob("spec-*.json")))
    spec = {**spec, "threads": threads, "result": str(tmp / f"result-{n}.json")}
    path = tmp / f"spec-{n}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    tail: deque[str] = deque(maxlen=1)  # the child's last line: the reason, if it fails
    with subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(path)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # shown as it comes: a full row runs for many minutes
            if line.strip():
                print(f"    {line.rstrip()}", flush=True)
                tail.append(line.strip())
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    return json.loads(Path(spec["result"]).read_text())


# ---------------------------------------------------------------- comparing -------------------------

def meets(value: float, target: float, higher: bool) -> bool:
    return value >= target if higher else value <= target


def time_to_reach(row: Row, ref_value: float, ex: dict) -> tuple[float | None, int | None]:
    """(seconds, epoch) at which exoml reached the reference's score; (None, None) if its final test
    score does not. The first epoch whose validation score reaches it, else the whole run."""
    if not meets(ex["metrics"][row.metric], ref_value, row.higher_is_better):
        return None, None
    if row.history:
        for h in ex["history"]:
            v = h.get(row.history)
            if isinstance(v, (int, float)) and meets(v, ref_value, row.higher_is_better):
                return h["t_s"], h.get("epoch")
    return ex["seconds"], None


def exoml_command(row: Row, flags: list[str], seed: int) -> str:
    return shlex.join(["exoml", "run", row.task, *flags, "--seed", str(seed)])


def compare(name: str, args, tmp: Path, cache: dict) -> dict:
    """One row: both sides (exoml's run shared by rows with the same task and flags), the comparison."""
    import torch
    row = ROWS[name]
    base = {"row": name, "task": row.task, "metric": {"key": row.metric, "label": row.label, "kind": row.kind,
            "higher_is_better": row.higher_is_better}, "reference": {"name": row.reference, "source": row.source},
            "smallest": args.smallest}
    if row.needs == "gpu" and not torch.cuda.is_available():
        return base | {"status": "not measured: no GPU"}
    if row.needs == "keras":
        import importlib.util
        if importlib.util.find_spec("keras") is None:
            return base | {"status": "not measured: keras is not installed (pip install -e \".[bench]\")"}
    flags = list(row.exoml_small if args.smallest else row.exoml)
    kwargs = {}
    if row.equal_time:  # the judge first (not timed), then exoml's GAN, then the reference for as long
        judge_flags = list(JUDGE_SMALL if args.smallest else JUDGE)
        judge = cache.get(("mnist", tuple(judge_flags)))
        if judge is None:
            judge = cache[("mnist", tuple(judge_flags))] = _side(
                {"side": "exoml", "task": "mnist", "flags": judge_flags, "seed": args.seed, "out": str(tmp / "runs")},
                tmp, args.threads)
        if "error" in judge:
            return base | {"status": f"failed: the judge (exoml run mnist): {judge['error']}"}
        flags += ["--judge", judge["run"]] + (["--judge-min-accuracy", "0"] if args.smallest else [])
    key = (row.task, tuple(flags))
    if key not in cache:
        print(f"[peers] {name}: exoml: {exoml_command(row, flags, args.seed)}", flush=True)
        cache[key] = _side({"side": "exoml", "task": row.task, "flags": flags, "seed": args.seed,
                            "out": str(tmp / "runs")}, tmp, args.threads)
    ex = cache[key]
    if "error" in ex:
        return base | {"status": f"failed: exoml: {ex['error']}"}
    if row.equal_time:
        kwargs = {"budget_s": ex["metrics"]["train_s"], "judge_run": judge["run"],
                  "n_eval": int(ex["metrics"]["n_generated"])}
    print(f"[peers] {name}: reference: {row.reference}", flush=True)
    ref = _side({"side": "reference", "recipe": row.recipe, "seed": args.seed, "small": args.smallest,
                 "kwargs": kwargs}, tmp, args.threads)
    if "error" in ref:
        return base | {"status": f"failed: reference: {ref['error']}"}
    value = ex["metrics"][row.metric]
    seconds = ex["metrics"]["train_s"] if row.equal_time else ex["seconds"]
    reach_s, reach_epoch = (None, None) if row.equal_time else time_to_reach(row, ref["value"], ex)
    epochs = [h for h in ex["history"] if "epoch" in h]
    shown = ["JUDGE" if row.equal_time and f == judge["run"] else f for f in flags]  # not the temporary path
    exoml = {"command": exoml_command(row, shown, args.seed), "value": value, "seconds": seconds,
             "whole_run_s": ex["seconds"], "reach_s": reach_s, "reach_epoch": reach_epoch,
             "history_column": row.history, "epoch_t_s": [round(h["t_s"], 3) for h in epochs],
             "metrics": {k: v for k, v in ex["metrics"].items() if k in (
                 row.metric, row.same_model, "fid", "class_share_min", "class_share_max", "train_s",
                 "time_to_result_s", "train_time_s", "epochs_run")}}
    out = base | {"status": "measured", "reference": base["reference"] | ref, "exoml": exoml,
                  "ratios": {"time": ref["seconds"] / seconds if not row.equal_time else None,
                             "reach": ref["seconds"] / reach_s if reach_s else None}}
    if row.equal_time:
        exoml["judge"] = {"command": exoml_command(ROWS["mnist-keras"], judge_flags, args.seed),
                          "test_accuracy": judge["metrics"]["accuracy"]}
    if row.same_model:
        mine, theirs = ex["metrics"][row.same_model], ref["same_model_value"]
        out["same_model"] = {"exoml_key": row.same_model, "exoml": mine, "reference_model": ref["same_model"],
                             "reference": theirs, "equal": abs(mine - theirs) <= 1e-9}
    return out


# ---------------------------------------------------------------- tables ----------------------------

def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct2":
        return f"{100 * value:.2f}%"
    if kind == "kw":
        return f"{value:.1f} kW"
    return f"{value:.4f}"


def secs(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 100 else f"{s / 60:.1f} min"


def ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.2f}×" if r >= 0.1 else f"1/{1 / r:.0f}"  # 1/232: exoml took 232 times as long


GOAL = 3.0  # exoml should reach each reference's score in at most 1/GOAL of the reference's time, and end better


def goal(r: dict) -> str:
    """Whether the row meets the goal: "met", or "**missed**" and why; "—" where not measured. The
    ratios shown are rounded towards the goal's side, so a miss never reads as "3.0× sooner"."""
    if r["status"] != "measured":
        return "—"
    ref, ex, m = r["reference"], r["exoml"], r["metric"]
    if not meets(ex["value"], ref["value"], m["higher_is_better"]) or ex["value"] == ref["value"]:
        return "**missed**: does not end better"
    if r["ratios"]["reach"] is None:  # compared at equal training time (the GAN): ending better is the goal
        return "met (better at equal time)"
    x = r["ratios"]["reach"]
    if x >= GOAL:
        return "met"
    if x >= 1:  # as the ratio columns round it, unless that would read as the goal
        shown = round(x, 1) if round(x, 1) < GOAL else math.floor(10 * x) / 10
        return f"**missed**: {shown:.1f}× sooner"
    longer = 1 / x
    return f"**missed**: {math.ceil(10 * longer) / 10:.1f}× longer" if longer < 10 else f"**missed**: {longer:,.0f}× longer"


def table(recs: list[dict]) -> str:
    """One Markdown row per record (BENCHMARKS.md's generated block and the script's output)."""
    lines = ["| row | reference | metric | reference: score, time | exoml: score, time | exoml reaches the "
             "reference's score | reference time ÷ exoml time | ÷ exoml's time to reach | goal: reach it in a third of "
             "its time, end better | hardware, date, commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in recs:
        ref, m = r["reference"], r["metric"]
        head = f"| {r['row']} | [{ref['name']}]({ref['source'].split(' ')[0]}) | {m['label']} |"
        if r["status"] != "measured":
            lines.append(f"{head} {r['status']} | — | — | — | — | — | {r.get('hardware', '—')}, {r.get('date', '—')} |")
            continue
        ex = r["exoml"]
        if ex["reach_s"] is not None:
            reach = secs(ex["reach_s"]) + (f" (epoch {ex['reach_epoch']})" if ex["reach_epoch"] else " (whole run)")
        else:
            reach = "equal training time" if r["ratios"]["time"] is None and r["task"] == "gan" else "**not reached**"
        threads = r.get("threads")
        lines.append(f"{head} {fmt(ref['value'], m['kind'])} in {secs(ref['seconds'])} | "
                     f"{fmt(ex['value'], m['kind'])} in {secs(ex['seconds'])} | {reach} | {ratio(r['ratios']['time'])} | "
                     f"{ratio(r['ratios']['reach'])} | {goal(r)} | {r['hardware']}, {threads} thread{'s' if threads != 1 else ''}; "
                     f"{r['date']}, {r.get('git_sha') or 'no commit'} |")
        better = meets(ex["value"], ref["value"], m["higher_is_better"])
        note = [f"exoml: `{ex['command']}`; reference: {ref['settings']}"]
        if not better:
            note.append(f"**exoml falls short of the reference** ({fmt(ex['value'], m['kind'])} vs "
                        f"{fmt(ref['value'], m['kind'])})")
        if "same_model" in r:
            s = r["same_model"]
            note.append(f"the same model in both (exoml's `{s['exoml_key']}` = {s['exoml']:.6f}, "
                        f"{s['reference_model']} = {s['reference']:.6f}): "
                        + ("**equal**" if s["equal"] else "**they differ**"))
        if r["task"] == "gan":
            note.append(f"JUDGE: a run of `{ex['judge']['command']}` ({fmt(ex['judge']['test_accuracy'], 'pct2')} "
                        "test accuracy), trained first, not timed")
            note.append(f"FID (judge's features) reference {ref['fid']:.2f}, exoml {ex['metrics'].get('fid', float('nan')):.2f}; "
                        f"class shares reference {100 * ref['class_share_min']:.1f}-{100 * ref['class_share_max']:.1f}%, "
                        f"exoml {100 * ex['metrics']['class_share_min']:.1f}-{100 * ex['metrics']['class_share_max']:.1f}%")
        note += ROWS[r["row"]].notes if r["row"] in ROWS else ()
        note += [r["note"]] if r.get("note") else []
        notes.append(f"- {r['row']}: " + "; ".join(note))
    return "\n".join(lines + ([""] + notes if notes else []))


def headline(recs: list[dict]) -> str:
    """README.md's summary: exoml's speed-up to each reference's score, where measured."""
    done = [r for r in recs if r["status"] == "measured"]
    if not done:
        return "Not measured yet."
    lines = ["| exercise | reference | its score, time | exoml's score, time | exoml reaches its score | goal: "
             f"{GOAL:g}× sooner, ends better |", "|---|---|---|---|---|---|"]
    for r in done:
        ref, ex, kind = r["reference"], r["exoml"], r["metric"]["kind"]
        if r["ratios"]["reach"]:
            x = r["ratios"]["reach"]
            speed = f"{x:.1f}× sooner" if x >= 1 else f"takes {1 / x:,.0f}× as long"
        elif r["task"] == "gan":
            speed = "equal training time"
        else:
            speed = "**not reached**"
        variant = ROWS[r["row"]].variant if r["row"] in ROWS else ""
        lines.append(f"| `{r['row']}`{f' ({variant})' if variant else ''} | {ref['name']} | {fmt(ref['value'], kind)}, {secs(ref['seconds'])} | "
                     f"{fmt(ex['value'], kind)}, {secs(ex['seconds'])} | {speed} | {goal(r).split(':')[0]} |")
    hosts: dict[str, list[str]] = {}
    for r in done:
        hosts.setdefault(f"{r['hardware']}, {r['threads']} threads", []).append(f"`{r['row']}`")
    where = "; ".join(f"{hw} ({', '.join(rows)})" for hw, rows in sorted(hosts.items()))
    unmeasured = "".join(f" `{r['row']}`, {r['reference']['name']}: {r['status']}." for r in recs
                         if r["status"] != "measured")
    return "\n".join(lines) + f"\n\nMeasured on {where}; each row's date and commit: BENCHMARKS.md.{unmeasured}"


def load(folder: Path = RESULTS, smallest: bool = False) -> list[dict]:
    """The records in `folder`, in ROWS order (records of --smallest runs only when asked)."""
    recs = {}
    for path in sorted(Path(folder).glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("format") == FORMAT and bool(r.get("smallest")) == smallest:
            recs[r["row"]] = r
    order = list(ROWS)
    return sorted(recs.values(), key=lambda r: order.index(r["row"]) if r["row"] in order else len(order))


# ---------------------------------------------------------------- main ------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), metavar="ROW",
                   help=f"rows to run (default: all): {', '.join(ROWS)}")
    p.add_argument("--seed", type=int, default=0, help="seed of both sides (default 0)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of both sides (default: torch's default)")
    p.add_argument("--smallest", action="store_true",
                   help="one epoch on a subset (exoml: --quick): checks that every row runs, measures nothing")
    p.add_argument("--results", type=Path, default=RESULTS, help=f"folder of the records (default {RESULTS})")
    args = p.parse_args(argv)
    import torch
    if args.threads is None:
        args.threads = torch.get_num_threads()
    if args.threads < 1:
        p.error("--threads must be >= 1")
    try:  # before hours of runs, not after them
        args.results.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        p.error(f"--results {args.results}: {e.strerror}")
    env = records.environment() | {"threads": args.threads}  # before the first run: its load says how quiet
    from importlib.metadata import PackageNotFoundError, version
    try:
        env["versions"]["keras"] = version("keras")
    except PackageNotFoundError:  # the Keras rows say so
        pass
    command = records.command_of("bench_peers.py", argv)
    from exoml.toolkit.runs import atomic_write_text
    names, done, failed, t0 = args.rows or list(ROWS), [], 0, time.time()
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        cache: dict = {}
        for name in names:
            r = compare(name, args, Path(tmp), cache) | env | {"format": FORMAT, "seed": args.seed,
                                                                "command": command}
            failed += r["status"].startswith("failed")
            path = args.results / f"{name}{'-smallest' if args.smallest else ''}.json"
            if r["status"] == "measured" or not path.exists():  # a failure never replaces a measurement
                atomic_write_text(path, json.dumps(r, indent=2) + "\n")
                kept = f"record {path}"
            else:
                kept = f"the earlier record {path} is kept"
            done.append(r)
            print(f"[peers] {name}: {r['status']} ({time.time() - t0:.0f} s so far; {kept})", flush=True)
    print("\n" + table(done) + ("\n\n(--smallest: a check that every row runs, not a measurement)"
                                if args.smallest else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
