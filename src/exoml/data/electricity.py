"""UCI Individual household electric power consumption: one house near Paris, one row per
minute from 16/12/2006 17:24 to 26/11/2010 21:02 (2,075,259 rows).

Loader returns a Bunch:
    frame         pandas DataFrame (2075259, 7), index a DatetimeIndex named "datetime"
                  (datetime64[ns], strictly increasing, local time as written in the file), columns
                  Global_active_power (kW), Global_reactive_power (kW), Voltage (V),
                  Global_intensity (A), Sub_metering_1/2/3 (Wh): all float64, NaN where missing
    missing_rows  int, rows with at least one missing value (`?` in the file)

Input: household_power_consumption.txt, plain or .gz/.xz/.bz2, or the official .zip holding it.
The file is `;`-separated with the exact header below, dates d/m/yyyy (not zero-padded),
times hh:mm:ss, `?` for a missing value (a missing row leaves Sub_metering_3 empty instead).
Parsing is pandas' C reader (seconds); the cache is a datetime64 array and a (7, rows)
float64 block, one column per row of it.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError, RemoteFile, expand, find_file, read_bytes

HEADER = ["Date", "Time", "Global_active_power", "Global_reactive_power", "Voltage", "Global_intensity",
          "Sub_metering_1", "Sub_metering_2", "Sub_metering_3"]
VALUES = HEADER[2:]
MAX_BYTES = 400_000_000  # the official text is 127 MB
_NAME = r"household_power_consumption(\.txt)?(\.gz|\.xz|\.bz2|\.zip)?"


def _parse_unique(col, fmt: str, what: str, name: str) -> np.ndarray:
    """Parse each distinct string once (1,442 dates, 1,440 times instead of 2 million each)."""
    import pandas as pd
    codes, uniq = pd.factorize(col)  # uniques in order of first appearance
    try:
        parsed = pd.to_datetime(pd.Index(uniq), format=fmt).to_numpy().astype("datetime64[ns]")
    except (ValueError, TypeError):
        for k, u in enumerate(uniq):  # error path only: name the first offending value and line
            try:
                pd.to_datetime(u, format=fmt)
            except (ValueError, TypeError):
                line = int(np.flatnonzero(codes == k)[0]) + 2
                raise DataError(f"{name}: line {line}: bad {what} {u!r} (expected {fmt})") from None
        raise
    return parsed[codes]


def read_power(path: Path):
    import pandas as pd
    data = read_bytes(path, MAX_BYTES)  # ~127 MB decompressed; corruption is a DataError
    header = data[:data.find(b"\n")].decode("utf-8", "replace").strip().split(";")
    if header != HEADER:
        raise DataError(f"{path.name}: header is {';'.join(header)!r}, expected {';'.join(HEADER)!r}")
    # pandas pads a short row with NaN, which would pass for "missing"; counting separators
    # (a C-speed scan) proves every line has exactly 9 fields before parsing.
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if data.count(b";") != 8 * lines:
        bad = next(i for i, ln in enumerate(data.splitlines()) if ln.count(b";") != 8)
        raise DataError(f"{path.name}: line {bad + 1} does not have 9 ';'-separated fields")
    try:
        # Only '?' means missing, plus an empty Sub_metering_3 (the official file writes a missing
        # row as `d;t;?;?;?;?;?;?;`). Anything else fails the float conversion, not silently NaN.
        dtypes = {c: str for c in HEADER[:2]} | {c: np.float64 for c in VALUES}
        df = pd.read_csv(io.BytesIO(data), sep=";", dtype=dtypes,
                         na_values={c: ["?", ""] if c == "Sub_metering_3" else ["?"] for c in VALUES},
                         keep_default_na=False, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, TypeError) as e:
        # ValueError: a value that is neither a number nor '?' (pandas names it in the message)
        raise DataError(f"{path.name}: unreadable ({str(e).strip().splitlines()[-1]})") from None
    del data
    if len(df) == 0:
        raise DataError(f"{path.name}: no data rows")
    stamp = _parse_unique(df["Date"], "%d/%m/%Y", "date", path.name) + (
        _parse_unique(df["Time"], "%H:%M:%S", "time", path.name) - np.datetime64("1900-01-01", "ns"))
    steps = np.diff(stamp.astype(np.int64))
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DataError(f"{path.name}: line {i + 2}: time {stamp[i]} does not follow {stamp[i - 1]} "
                        "(timestamps must be strictly increasing)")
    return stamp, {c: df[c].to_numpy(dtype=np.float64) for c in VALUES}


def _build(paths: list[Path], subset: bool) -> tuple[dict, dict]:
    files = expand(paths)
    path = files[0] if len(files) == 1 else find_file(files, _NAME, "household_power_consumption.txt (or .zip)")
    stamp, cols = read_power(path)
    missing = np.zeros(len(stamp), dtype=bool)
    for a in cols.values():
        missing |= np.isnan(a)
    meta = {"counts": {"rows": len(stamp)}, "columns": VALUES, "missing_rows": int(missing.sum()),
            "first": str(stamp[0]), "last": str(stamp[-1]), "source": [str(p) for p in paths]}
    # One (7, rows) block, column after column: that is pandas' own layout for a float frame,
    # so the loader wraps it without the 116 MB copy that assembling 7 separate columns costs.
    return {"datetime": stamp, "values": np.stack([cols[c] for c in VALUES])}, meta


def _load(arrays: dict, meta: dict) -> Bunch:
    import pandas as pd
    index = pd.DatetimeIndex(arrays["datetime"], name="datetime")
    frame = pd.DataFrame(arrays["values"].T, columns=list(meta["columns"]), index=index, copy=False)
    return Bunch(frame=frame, missing_rows=int(meta["missing_rows"]))


ELECTRICITY = Dataset(
    name="electricity", title="Individual household electric power consumption (UCI)",
    homepage="https://archive.ics.uci.edu/dataset/235/individual+household+electric+power+consumption",
    # No published checksum of this zip was found (many projects download it, none pin a hash),
    # so hash=None: the download is not checksum-verified; the content is validated instead
    # (exact header, numeric values or '?', strictly increasing timestamps, official row count).
    files=[RemoteFile("household_power_consumption.zip",
                      "https://archive.ics.uci.edu/ml/machine-learning-databases/00235/household_power_consumption.zip",
                      None)],
    counts={"rows": 2075259},
    build=_build, load=_load, shared_dirs=("electricity",),
    license="CC BY 4.0 (UCI Machine Learning Repository; Hebrail & Berard)",
    note="about 1.25% of the rows are missing (NaN)")
