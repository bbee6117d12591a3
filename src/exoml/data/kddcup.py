"""KDD Cup 1999 network intrusion data: the 10% training set (494,021 connections) and the
labelled test set `corrected` (311,029 connections), 41 features + a label each.

Loader returns a Bunch:
    train, test    pandas DataFrames, the 41 features named as in `kddcup.names`, then `label`:
                   - protocol_type, service, flag, label: category dtype, with the same categories
                     (union of both splits, sorted) in train and test, so `.cat.codes` agree;
                   - the other 38 columns: int64 where every value is an integer, else float64.
                   `label` is the attack name WITHOUT the file's trailing dot ("normal", "smurf", ...).
    attack_types   dict attack -> category ("dos", "probe", "r2l", "u2r") from `training_attack_types`;
                   it covers the 22 training attacks only: the test set holds 17 attacks that occur
                   nowhere in training (e.g. "mailbomb", "snmpgetattack"); for those .get() is None.
    categorical    the 7 columns `kddcup.names` declares symbolic (incl. land, logged_in,
                   is_host_login, is_guest_login, which are 0/1 integers)
    feature_names  the 41 feature names, in file order

Files: plain, .gz (official), .xz, .bz2 or single-file .zip. The gzip of the 10% set stores
the inner name `kddcup.data_10_percent_corrected`, so both spellings are accepted.
"""
from __future__ import annotations

import gzip
import lzma
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError, RemoteFile, expand, find_file, open_maybe_compressed, read_bytes

_Z = r"(\.gz|\.xz|\.bz2|\.zip)?"
TEXT_COLUMNS = ("protocol_type", "service", "flag", "label")  # the only non-numeric fields
CATEGORIES = {"dos", "probe", "r2l", "u2r"}


def parse_names(text: str, name: str = "kddcup.names") -> tuple[list[str], list[tuple[str, str]]]:
    """(class names of line 1, [(feature, 'continuous'|'symbolic'), ...41])."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{name}: empty file")
    classes = [c.strip() for c in lines[0].rstrip(".").split(",")]
    feats = []
    for ln in lines[1:]:
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*:\s*(continuous|symbolic)\s*\.", ln)
        if not m:
            raise DataError(f"{name}: cannot read feature line {ln!r} (expected 'name: continuous.' or 'symbolic.')")
        feats.append((m[1], m[2]))
    if len(feats) != 41:
        raise DataError(f"{name}: {len(feats)} features declared, expected 41")
    return classes, feats


def parse_attack_types(text: str, name: str = "training_attack_types") -> dict[str, str]:
    out = {}
    for ln in text.splitlines():
        if not ln.strip():
            continue
        parts = ln.split()
        if len(parts) != 2 or parts[1] not in CATEGORIES:
            raise DataError(f"{name}: cannot read line {ln!r} (expected '<attack> <dos|probe|r2l|u2r>')")
        out[parts[0]] = parts[1]
    if not out:
        raise DataError(f"{name}: no attack types")
    return out


def read_connections(path: Path, columns: list[str]) -> "pd.DataFrame":
    """One data file, strictly: 42 comma-separated fields per line, numeric where numeric."""
    import pandas as pd
    try:
        with open_maybe_compressed(path) as fh:
            # header=None, no names: a row with extra fields is a ParserError (with names given,
            # pandas would quietly turn leading fields into an index); short rows come back as NaN.
            df = pd.read_csv(fh, header=None, dtype={i: str for i, c in enumerate(columns) if c in TEXT_COLUMNS},
                             keep_default_na=False, na_values=[""], low_memory=False)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, gzip.BadGzipFile) as e:
        raise DataError(f"{path.name}: corrupt or truncated file ({e})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path.name}: not a KDD Cup data file ({str(e).strip().splitlines()[-1]})") from None
    if df.shape[1] != len(columns):
        raise DataError(f"{path.name}: {df.shape[1]} fields per line, expected {len(columns)}")
    df.columns = columns
    bad_rows = np.flatnonzero(df.isna().to_numpy().any(axis=1))
    if bad_rows.size:
        raise DataError(f"{path.name}: line {bad_rows[0] + 1} has empty or missing fields (expected {len(columns)})")
    for c in columns:
        if c not in TEXT_COLUMNS and not pd.api.types.is_numeric_dtype(df[c]):
            bad = pd.to_numeric(df[c], errors="coerce").isna().to_numpy()
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path.name}: line {i + 1}: column {c} has non-numeric value {df[c].iloc[i]!r}")
    # Check the (few dozen) distinct labels, not 800,000 strings: far faster on object strings.
    for lab in df["label"].unique():
        if not lab.endswith("."):
            i = int(np.flatnonzero((df["label"] == lab).to_numpy())[0])
            raise DataError(f"{path.name}: line {i + 1}: label {lab!r} does not end with '.'")
    return df


def _build(paths: list[Path], subset: bool) -> tuple[dict, dict]:
    import pandas as pd
    files = expand(paths)
    names_path = find_file(files, r"kddcup\.names(\.txt)?", "kddcup.names")
    types_path = find_file(files, r"training_attack_types(\.txt)?", "training_attack_types")
    classes, feats = parse_names(read_bytes(names_path, 1_000_000).decode("utf-8", "replace"), names_path.name)
    attack_types = parse_attack_types(read_bytes(types_path, 1_000_000).decode("utf-8", "replace"), types_path.name)
    columns = [f for f, _ in feats] + ["label"]
    frames = {
        "train": read_connections(find_file(files, rf"kddcup\.data_10_percent(_corrected)?{_Z}",
                                            "kddcup.data_10_percent.gz"), columns),
        "test": read_connections(find_file(files, rf"corrected{_Z}", "corrected.gz (labelled test set)"), columns)}
    arrays, dtypes = {}, {}
    n_train = len(frames["train"])
    for c in columns:
        if c in TEXT_COLUMNS:  # codes into one shared, sorted category list (consistent codes)
            codes, cats = pd.factorize(pd.concat([frames["train"][c], frames["test"][c]]), sort=True)
            cats = [s[:-1] for s in cats] if c == "label" else list(cats)  # drop the trailing dot
            arrays[f"cat__{c}"] = np.array(cats, dtype=str)
            arrays[f"train__{c}"], arrays[f"test__{c}"] = np.split(codes.astype(np.int16), [n_train])
            dtypes[c] = "category"
            continue
        # A column integer in one split but float in the other becomes float64 in both.
        kind = np.result_type(*(df[c].dtype for df in frames.values()))
        for split, df in frames.items():
            arrays[f"{split}__{c}"] = df[c].to_numpy(dtype=kind)
        dtypes[c] = str(kind)
        if kind.kind == "i":  # store ints in the smallest type that holds them (cache 240 -> 110 MB)
            lo, hi = (min(arrays[f"{s}__{c}"].min() for s in frames), max(arrays[f"{s}__{c}"].max() for s in frames))
            small = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                         if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
            for split in frames:
                arrays[f"{split}__{c}"] = arrays[f"{split}__{c}"].astype(small)
    known = {c for c in classes if c}
    unknown = sorted(set(arrays["cat__label"][np.unique(arrays["train__label"])]) - known)
    if unknown:  # the training labels are exactly those listed on line 1 of kddcup.names
        raise DataError(f"training labels not declared in {names_path.name}: {', '.join(unknown[:5])}")
    meta = {"counts": {s: len(df) for s, df in frames.items()}, "columns": columns, "dtypes": dtypes,
            "categorical": [f for f, t in feats if t == "symbolic"], "attack_types": attack_types,
            "source": [str(p) for p in paths]}
    return arrays, meta


def _load(arrays: dict, meta: dict) -> Bunch:
    import pandas as pd
    out = {}
    for split in ("train", "test"):
        cols = {}
        for c in meta["columns"]:
            a = arrays[f"{split}__{c}"]
            if meta["dtypes"][c] == "category":
                cols[c] = pd.Categorical.from_codes(a, categories=pd.Index(arrays[f"cat__{c}"].tolist()))
            else:  # back from the compact stored int type to the documented int64 / float64
                cols[c] = a.astype(meta["dtypes"][c], copy=False)
        out[split] = pd.DataFrame(cols)
    return Bunch(**out, attack_types=dict(meta["attack_types"]), categorical=list(meta["categorical"]),
                 feature_names=meta["columns"][:-1])


_BASE = "http://kdd.ics.uci.edu/databases/kddcup99/"
KDDCUP = Dataset(
    name="kddcup", title="KDD Cup 1999 network intrusion detection (10% train + corrected test)",
    homepage="http://kdd.ics.uci.edu/databases/kddcup99/kddcup99.html",
    files=[
        # sha256 pinned by scikit-learn (sklearn/datasets/_kddcup99.py, figshare mirror of this file);
        # the ../shared/data copy is byte-identical.
        RemoteFile("kddcup.data_10_percent.gz", _BASE + "kddcup.data_10_percent.gz",
                   "sha256:8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561"),
        # LOW CONFIDENCE: this sha256 comes from a single third-party source (a papers_with_code
        # download config), not from a major library. The ../shared/data copy has the same content
        # in another gzip wrapper (its sha256 differs), so it cannot confirm the value.
        RemoteFile("corrected.gz", _BASE + "corrected.gz",
                   "sha256:abd8165508378859b07e38537271f0ebf8a4d7319f643188cd7361e939a05c43"),
        # No published hash was found for these two; these are the sha256 of the ../shared/data
        # copies, which its README documents as the official files.
        RemoteFile("kddcup.names", _BASE + "kddcup.names",
                   "sha256:24ad45a4c5de85cd73bcc81cf4965a58bbf3e83b48c6e6d3b0284119e7d42efd"),
        RemoteFile("training_attack_types", _BASE + "training_attack_types",
                   "sha256:0762f0d4405ef457e60b0179145e5fca328b5103a9364a81e63b99d9f0620c74")],
    counts={"train": 494021, "test": 311029},
    build=_build, load=_load, shared_dirs=("kddcup99",),
    license="UCI KDD Archive: free for research use, cite the archive (listed CC BY 4.0 on the UCI repository)",
    note="labels lose their trailing '.'; 17 test-set attacks never occur in training")
