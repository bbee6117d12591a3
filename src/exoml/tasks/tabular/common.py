"""Small helpers the tabular tasks (boston, iris, kddcup) share: reading the rows given to
`exoml predict`, the non-pickle JSON files that hold fitted scikit-learn models, a CPU thread
limit, and kddcup's preprocessing (fit on training rows only) and detection metrics.

Bad input is an ExomlError naming the row and column, so the CLI prints one line and exits 2.
"""
from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ...errors import ExomlError
from ...toolkit.runs import Run


def _number(value, where: str) -> float:
    """A finite float from a JSON number or a numeric string; anything else is an error."""
    if isinstance(value, bool) or value is None:
        raise ExomlError(f"{where}: {value!r} is not a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ExomlError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise ExomlError(f"{where}: {value!r} is not a finite number")
    return x


def _key(name: str) -> str:
    """Column names compared loosely: 'Sepal_Length', 'sepal length (cm)' and 'sepal length' agree."""
    return re.sub(r"\s*\(cm\)$", "", str(name).strip().lower().replace("_", " "))


def rows_from_args(row: list[str] | None, csv: Path | None, columns: list[str],
                   ignore: tuple[str, ...] = ()) -> tuple[pd.DataFrame, str]:
    """The rows given as `--row JSON` (an object keyed by column, or a list in column order;
    repeatable) or `--csv FILE` (a header naming the columns), as a float64 frame with exactly
    `columns`, plus a short stem naming the input (for the plot's file name). Columns in
    `ignore` (e.g. the target) may be present and are dropped; any other unknown column, a
    missing column or a value that is not a finite number is an error."""
    if bool(row) == bool(csv):
        raise ExomlError("give the input as --row JSON (repeatable) or as --csv FILE (one of the two)")
    wanted = {_key(c): c for c in columns}
    skip = {_key(c) for c in ignore}
    records: list[tuple[str, dict]] = []
    if row:
        for i, text in enumerate(row, 1):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ExomlError(f"--row {i}: not valid JSON ({e.msg} at character {e.pos})") from None
            if isinstance(obj, list):
                if len(obj) != len(columns):
                    raise ExomlError(f"--row {i}: a list needs {len(columns)} values in the order "
                                     f"{', '.join(columns)}; got {len(obj)}")
                obj = dict(zip(columns, obj))
            if not isinstance(obj, dict):
                raise ExomlError(f"--row {i}: expected a JSON object {{\"column\": value, ...}} or a list")
            records.append((f"--row {i}", obj))
        stem = "row"
    else:
        csv = Path(csv)
        try:
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise ExomlError(f"no such file: {csv}") from None
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ExomlError(f"{csv.name}: not a readable CSV file ({str(e).strip().splitlines()[-1]})") from None
        if frame.columns.size and (frame.columns[0] == "" or str(frame.columns[0]).startswith("Unnamed: 0")):
            frame = frame.iloc[:, 1:]  # the index column pandas writes
        if frame.empty:
            raise ExomlError(f"{csv.name}: no data rows")
        records = [(f"{csv.name} line {i + 2}", r) for i, r in enumerate(frame.to_dict("records"))]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", csv.stem) or "input"
    out = []
    for where, obj in records:
        given = {_key(k): v for k, v in obj.items()}
        unknown = [k for k in obj if _key(k) not in wanted and _key(k) not in skip]
        if unknown:
            raise ExomlError(f"{where}: unknown column(s) {', '.join(map(str, unknown))}; "
                             f"expected {', '.join(columns)}")
        missing = [c for k, c in wanted.items() if k not in given]
        if missing:
            raise ExomlError(f"{where}: missing column(s) {', '.join(missing)}")
        out.append({c: _number(given[k], f"{where}, column {c}") for k, c in wanted.items()})
    return pd.DataFrame(out, columns=columns, dtype=np.float64), stem


def add_row_args(parser, example: str) -> None:
    parser.add_argument("--row", action="append", metavar="JSON",
                        help=f"one input as a JSON object (or a list in column order), e.g. {example}; repeatable")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="inputs as a CSV file with a header row")


def save_model(run: Run, name: str, model: dict) -> Path:
    """A fitted model as plain JSON (arrays as lists): readable, diffable, no pickle."""
    return run.save_json(name, model)


def load_model(run_dir: Path, name: str, task: str) -> dict:
    path = Path(run_dir) / name
    try:
        model = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExomlError(f"{run_dir} has no {name}: it was not written by this version of `exoml run {task}`") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExomlError(f"{path}: not a readable model file ({e})") from None
    if not isinstance(model, dict) or model.get("task") != task:
        raise ExomlError(f"{path} is not a {task} model file")
    return model


def prediction_figure_path(run_dir: Path, stem: str) -> str:
    """predictions/<stem>.png inside the run, numbered so earlier plots are kept."""
    folder = Path(run_dir) / "predictions"
    n, name = 1, f"{stem}.png"
    while (folder / name).exists():
        n += 1
        name = f"{stem}-{n}.png"
    return f"predictions/{name}"



@contextmanager
def threads(n: int):
    """At most n CPU threads for BLAS/OpenMP (numpy, scikit-learn) and torch inside the block
    (0: leave the libraries' defaults). On a machine shared with other jobs, 1 thread is often
    many times faster than 2 fighting for the same cores."""
    if n <= 0:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- anomaly detection (kddcup) ----

ONE_HOT = ["protocol_type", "service", "flag"]
HEAVY = ["duration", "src_bytes", "dst_bytes", "wrong_fragment", "urgent", "hot", "num_failed_logins",
         "num_compromised", "num_root", "num_file_creations", "num_shells", "num_access_files", "count",
         "srv_count", "dst_host_count", "dst_host_srv_count"]  # counts spanning orders of magnitude: log1p
SCALERS = ("standard", "minmax")


def encode(df: pd.DataFrame, numeric: list[str]) -> tuple[np.ndarray, dict]:
    """Training-independent part: log1p of the heavy counts, symbolic columns as strings."""
    num = df[numeric].to_numpy(dtype=np.float64, copy=True)
    heavy = [numeric.index(c) for c in HEAVY]
    num[:, heavy] = np.log1p(np.maximum(num[:, heavy], 0))
    return num, {c: df[c].astype(str).to_numpy() for c in ONE_HOT}


def fit_prep(num: np.ndarray, cats: dict, numeric: list[str], scaler: str) -> dict:
    """Statistics of the training rows only: centre/scale per column, categories seen.
    standard: (x - mean) / std, where a column nearly constant in training gets a tiny std, so a
    row that differs there stands out; minmax: (x - min) / (max - min), [0, 1] on training rows."""
    if scaler not in SCALERS:
        raise ExomlError(f"unknown scaler {scaler!r}: choose from {', '.join(SCALERS)}")
    centre, scale = (num.mean(0), num.std(0)) if scaler == "standard" else (num.min(0), num.max(0) - num.min(0))
    return {"numeric": numeric, "scaler": scaler, "centre": centre, "scale": np.where(scale > 0, scale, 1.0),
            "categories": {c: sorted(set(v.tolist())) for c, v in cats.items()}}


def features(prep: dict, num: np.ndarray, cats: dict) -> np.ndarray:
    """Scaled numeric columns, then one one-hot block per symbolic column."""
    parts = [(num - np.asarray(prep["centre"])) / np.asarray(prep["scale"])]
    for c in ONE_HOT:
        codes = pd.Index(prep["categories"][c]).get_indexer(cats[c])  # -1: unseen in training
        hot = np.zeros((len(codes), len(prep["categories"][c])))
        hot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
        parts.append(hot)
    return np.concatenate(parts, 1).astype(np.float32)


def prf(y, pred) -> dict:
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {"precision": p, "recall": r, "f1": f}


def aucs(y, s) -> dict:
    both = 0 < y.sum() < len(y)
    return {"roc_auc": skm.roc_auc_score(y, s) if both else float("nan"),
            "pr_auc": skm.average_precision_score(y, s) if both else float("nan")}


def parse_records(lines: list[tuple[str, str]], features: list[str]) -> pd.DataFrame:
    """Raw connection records (41 comma-separated fields, optionally the label) as a frame;
    `lines` are (where, text) pairs, `where` names the record in error messages."""
    rows = []
    for where, line in lines:
        fields = [f.strip() for f in line.strip().split(",")]
        if len(fields) == len(features) + 1:
            fields = fields[:-1]  # the label
        if len(fields) != len(features):
            raise ExomlError(f"{where}: {len(fields)} fields, expected {len(features)} (41 features, optionally the label)")
        row = {}
        for name, v in zip(features, fields):
            if name in ONE_HOT:
                if not v:
                    raise ExomlError(f"{where}: field {name} is empty")
                row[name] = v
            else:
                row[name] = _number(v, f"{where}, field {features.index(name) + 1} ({name})")
        rows.append(row)
    return pd.DataFrame(rows, columns=features)
