"""Boston Housing (Harrison & Rubinfeld, 1978): 506 census tracts, 13 features + MEDV.

Loader returns a Bunch:
    frame          pandas DataFrame (506, 14), all float64, columns
                   CRIM ZN INDUS CHAS NOX RM AGE DIS RAD TAX PTRATIO B LSTAT MEDV
    feature_names  the first 13 column names
    target         "MEDV" (median home value in $1000s; censored at 50.0)
    note           why B is ethically problematic; a report using this data should say so

Accepted layouts (plain, .gz, .xz, .bz2 or single-file .zip):
- UCI `housing.data`: 14 whitespace-separated numbers per line, no header;
- StatLib `boston`: a free-text header, then each record wrapped over two lines (11 + 3 values);
- CSV with a header naming the 14 columns (any case, any order; a leading unnamed index
  column as written by pandas is dropped). Anything else is a DataError.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError, RemoteFile, expand, find_file, read_bytes

COLUMNS = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT", "MEDV"]
NOTE = ("B = 1000(Bk - 0.63)^2, Bk the proportion of Black residents: the original study built an assumption "
        "of racial self-segregation into this feature. scikit-learn removed its loader for this reason; "
        "use the data for teaching regression and say so in any report, do not deploy models on it.")
# Each column's range in the classic data (506 rows), slightly widened: a column found outside it
# is a sign of swapped or mislabelled columns, which would otherwise train to a wrong model silently.
RANGES = {"CRIM": (0, 100), "ZN": (0, 100), "INDUS": (0, 30), "CHAS": (0, 1), "NOX": (0.3, 0.9), "RM": (3, 9),
          "AGE": (0, 100), "DIS": (1, 13), "RAD": (1, 24), "TAX": (180, 720), "PTRATIO": (12, 23), "B": (0, 400),
          "LSTAT": (1, 40), "MEDV": (5, 50)}
_NAMES = r"(?i)(housing\.data|housing\.csv|boston(_?housing)?(\.txt|\.csv|\.data)?)(\.gz|\.xz|\.bz2|\.zip)?"


def _number(tok: str, line: int, name: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise DataError(f"{name}: line {line}: non-numeric value {tok!r}") from None


def parse_whitespace(text: str, name: str) -> np.ndarray:
    """housing.data (14 per line) or StatLib (free-text header, then 11 + 3 per record)."""
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines()) if ln.strip()]

    def numeric(toks):  # mostly numbers: a data line (a bad value in it is then reported, not skipped)
        ok = 0
        for t in toks:
            try:
                float(t)
                ok += 1
            except ValueError:
                pass
        return 2 * ok >= len(toks)
    # The StatLib header is prose; the data starts at the first line made mostly of numbers.
    start = next((k for k, (_, toks) in enumerate(lines) if numeric(toks)), len(lines))
    body = lines[start:]
    if not body:
        raise DataError(f"{name}: no numeric data found")
    lens = [len(t) for _, t in body]
    wrapped = len(body) % 2 == 0 and set(lens[0::2]) == {11} and set(lens[1::2]) == {3}
    if not wrapped:
        for ln, toks in body:
            if len(toks) != 14:
                raise DataError(f"{name}: line {ln} has {len(toks)} values, expected 14 (or 11 + 3 when wrapped)")
    values = [_number(t, ln, name) for ln, toks in body for t in toks]
    return np.array(values, dtype=np.float64).reshape(-1, 14)


def parse_csv(text: str, name: str) -> np.ndarray:
    import pandas as pd
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{name}: unreadable CSV ({str(e).strip().splitlines()[-1]})") from None
    cols = [str(c).strip() for c in df.columns]
    if cols and (cols[0] == "" or cols[0].startswith("Unnamed: 0")):  # pandas' index column
        df, cols = df.iloc[:, 1:], cols[1:]
    upper = [c.upper() for c in cols]
    missing = [c for c in COLUMNS if c not in upper]
    extra = [c for c, u in zip(cols, upper) if u not in COLUMNS]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    if extra or len(set(upper)) != len(upper):
        raise DataError(f"{name}: unexpected or repeated column(s) {', '.join(extra) or 'duplicates'}; "
                        f"expected exactly {' '.join(COLUMNS)}")
    df.columns = upper
    out = np.empty((len(df), 14), dtype=np.float64)
    for j, c in enumerate(COLUMNS):
        for i, tok in enumerate(df[c].tolist()):
            out[i, j] = _number(tok.strip(), i + 2, name)  # line i + 2: after the header
    return out


def _build(paths: list[Path], subset: bool) -> tuple[dict, dict]:
    files = expand(paths)
    path = files[0] if len(files) == 1 else find_file(files, _NAMES, "housing.data (Boston Housing)")
    text = read_bytes(path, 10_000_000).decode("utf-8", "replace")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    # A CSV header names ~14 columns; the StatLib prose header has a comma or two at most.
    is_csv = first.count(",") >= 8 and any(ch.isalpha() for ch in first)
    data = parse_csv(text, path.name) if is_csv else parse_whitespace(text, path.name)
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:  # 'nan' and 'inf' parse as floats, so they must be caught after parsing
        r, c = bad[0]
        raise DataError(f"{path.name}: row {r + 1}: {COLUMNS[c]} is {data[r, c]} (missing values are not allowed)")
    if not np.isin(data[:, 3], (0.0, 1.0)).all():  # a cheap check that the columns are in order
        raise DataError(f"{path.name}: CHAS must be 0 or 1; are the columns in the documented order?")
    for j, c in enumerate(COLUMNS):  # swapped or mislabelled columns fall outside their known range
        low, high = RANGES[c]
        out = np.flatnonzero((data[:, j] < low) | (data[:, j] > high))
        if out.size:
            raise DataError(f"{path.name}: row {out[0] + 1}: {c} = {data[out[0], j]:g} is outside its range in the "
                            f"Boston data ({low:g}..{high:g}); are the columns in the documented order?")

    arrays = {c: np.ascontiguousarray(data[:, j]) for j, c in enumerate(COLUMNS)}
    return arrays, {"counts": {"rows": len(data)}, "columns": COLUMNS, "source": [str(p) for p in paths]}


def _load(arrays: dict, meta: dict) -> Bunch:
    import pandas as pd
    frame = pd.DataFrame({c: arrays[c] for c in meta["columns"]})
    return Bunch(frame=frame, feature_names=meta["columns"][:-1], target="MEDV", note=NOTE)


BOSTON = Dataset(
    name="boston", title="Boston Housing (Harrison & Rubinfeld 1978)",
    homepage="https://archive.ics.uci.edu/ml/machine-learning-databases/housing/",
    # sha256 pinned by UCIData.jl (and several independent repos); the ../shared/data copy matches it.
    files=[RemoteFile("housing.data", "https://archive.ics.uci.edu/ml/machine-learning-databases/housing/housing.data",
                      "sha256:baadf72995725d76efe787b664e1f083388c79ba21ef9a7990d87f774184735a", 49082)],
    counts={"rows": 506},
    build=_build, load=_load, shared_dirs=("boston",),
    license="no explicit license (StatLib / UCI; Harrison & Rubinfeld 1978)", note=NOTE,
    extra={"statlib_url": "http://lib.stat.cmu.edu/datasets/boston"})
