"""IMDB Large Movie Review Dataset (Maas et al., 2011): 25,000 train + 25,000 test reviews.

Loader returns a Bunch:
    train, test  pandas DataFrames of 25,000 rows each, sorted by (label, id), columns
                 text str (the raw review, UTF-8, still holding its `<br />` tags),
                 label int64 (0 = neg, 1 = pos), rating int64 (1-4 neg, 7-10 pos), id int64
    classes      ["neg", "pos"]
    vocab        list[str] from `imdb.vocab` (89,527 words in the official tree) or None

Input: the official `aclImdb_v1.tar.gz` (or any .tar/.tar.gz/.tar.xz of the `aclImdb/` tree,
such as ../shared/data/imdb/aclImdb-labelled.tar.xz), streamed member by member (never
extracted, so a hostile member name cannot write anywhere), or the extracted tree itself.
Reviews are `{train,test}/{pos,neg}/<id>_<rating>.txt`; `unsup/`, `*.feat` and `urls_*` are ignored.

Cache: per split one UTF-8 byte blob + int64 offsets (texts), label/rating/id int64 arrays.
Decoding 50,000 slices of one blob is much faster than parsing 50,000 small files again.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError, RemoteFile, iter_tar

CLASSES = ["neg", "pos"]
RATINGS = {"neg": range(1, 5), "pos": range(7, 11)}  # the dataset leaves out neutral 5-6
PER_LABEL = 12_500
_REVIEW = re.compile(r"(\d+)_(\d+)\.txt")
_ARCHIVE = re.compile(r".*\.(tar|tar\.gz|tgz|tar\.xz|txz|tar\.bz2)$", re.I)


def _tree_root(folder: Path) -> Path | None:
    """The folder holding train/ and test/: the folder itself or its aclImdb/ child."""
    for cand in (folder, folder / "aclImdb"):
        if (cand / "train").is_dir() and (cand / "test").is_dir():
            return cand
    return None


def _sources(paths: list[Path]) -> list[Path]:
    """One copy per path: an extracted tree wins over archives lying next to it (faster)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            root = _tree_root(p)
            archives = sorted(q for q in p.iterdir() if q.is_file() and _ARCHIVE.match(q.name))
            if root is not None:
                out.append(root)
            elif len(archives) == 1:
                out.append(archives[0])
            elif archives:
                raise DataError(f"{p}: several IMDB archives ({', '.join(a.name for a in archives)}); pass one")
            else:
                raise DataError(f"missing file: no aclImdb tree or .tar.gz/.tar.xz archive in {p}")
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"no such file or folder: {p}")
    return out


def _walk_tree(root: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    for split in ("train", "test"):
        for label in CLASSES:
            folder = root / split / label
            if not folder.is_dir():
                raise DataError(f"missing folder: {folder}")
            for f in sorted(folder.iterdir()):
                yield PurePosixPath(split, label, f.name), f.read_bytes()
    vocab = root / "imdb.vocab"
    if vocab.is_file():
        yield PurePosixPath("imdb.vocab"), vocab.read_bytes()


def _members(src: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    if src.is_dir():
        return _walk_tree(src)
    if not _ARCHIVE.match(src.name):
        raise DataError(f"{src.name}: expected the aclImdb tree or a .tar.gz/.tar.xz archive of it")
    return iter_tar(src)  # streams; rejects unsafe member names, corruption is a DataError


def _build(paths: list[Path], subset: bool) -> tuple[dict, dict]:
    rows: dict[str, list] = {"train": [], "test": []}  # (label, id, rating, bytes)
    seen: set[tuple[str, int, int]] = set()
    vocab = None
    for src in _sources(paths):
        for name, data in _members(src):
            if name.name == "imdb.vocab":
                vocab = data
                continue
            parts = name.parts
            if len(parts) < 3 or parts[-3] not in rows or parts[-2] not in RATINGS or name.name.startswith("."):
                continue  # unsup/, urls_*.txt, *.feat, README, macOS ._ files
            split, label, fname = parts[-3], parts[-2], parts[-1]
            m = _REVIEW.fullmatch(fname)
            if not m:
                raise DataError(f"{src.name}: unexpected file {name} (reviews are <id>_<rating>.txt)")
            rid, rating, y = int(m[1]), int(m[2]), CLASSES.index(label)
            if rating not in RATINGS[label]:
                raise DataError(f"{src.name}: {name}: rating {rating} is impossible for a {label} review "
                                f"(expected {RATINGS[label].start}-{RATINGS[label].stop - 1})")
            if (split, y, rid) in seen:
                raise DataError(f"{src.name}: review {split}/{label}/{rid} appears twice (two copies given?)")
            seen.add((split, y, rid))
            try:
                data.decode("utf-8")  # validate now; the cache stores the bytes as they are
            except UnicodeDecodeError as e:
                raise DataError(f"{src.name}: {name} is not UTF-8 ({e.reason} at byte {e.start})") from None
            rows[split].append((y, rid, rating, data))
    arrays, counts = {}, {}
    for split, rs in rows.items():
        rs.sort(key=lambda r: (r[0], r[1]))  # deterministic: label, then id (split is separate)
        per_label = [sum(1 for r in rs if r[0] == y) for y in (0, 1)]
        if not subset and rs and per_label != [PER_LABEL, PER_LABEL]:
            raise DataError(f"imdb: {split} has {per_label[0]} neg / {per_label[1]} pos reviews, "
                            f"the official dataset has {PER_LABEL} each")
        lengths = np.fromiter((len(r[3]) for r in rs), dtype=np.int64, count=len(rs))
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{split}_text"] = np.frombuffer(b"".join(r[3] for r in rs), dtype=np.uint8)
        for j, col in ((0, "label"), (1, "id"), (2, "rating")):
            arrays[f"{split}_{col}"] = np.fromiter((r[j] for r in rs), dtype=np.int64, count=len(rs))
        counts[split] = len(rs)
    if vocab is not None:
        arrays["vocab"] = np.frombuffer(vocab, dtype=np.uint8)
    return arrays, {"counts": counts, "classes": CLASSES, "source": [str(p) for p in paths]}


def _texts(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    b = blob.tobytes()
    o = offsets.tolist()
    return [b[o[i]:o[i + 1]].decode("utf-8") for i in range(len(o) - 1)]


def _load(arrays: dict, meta: dict) -> Bunch:
    import pandas as pd
    frames = {}
    for split in ("train", "test"):
        frames[split] = pd.DataFrame({
            "text": pd.Series(_texts(arrays[f"{split}_text"], arrays[f"{split}_offsets"]), dtype="str"),
            "label": arrays[f"{split}_label"], "rating": arrays[f"{split}_rating"], "id": arrays[f"{split}_id"]})
    vocab = arrays["vocab"].tobytes().decode("utf-8").splitlines() if "vocab" in arrays else None
    return Bunch(train=frames["train"], test=frames["test"], classes=list(meta["classes"]), vocab=vocab)


IMDB = Dataset(
    name="imdb", title="IMDB Large Movie Review Dataset (sentiment)",
    homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
    # sha256 and size as pinned by tensorflow-datasets (url_checksums/imdb_reviews.txt);
    # md5 7c2ac02c03563afcf9b574c7e56c153a in torchtext agrees on the same file.
    files=[RemoteFile("aclImdb_v1.tar.gz", "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                      "sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", 84125825)],
    counts={"train": 25000, "test": 25000},
    build=_build, load=_load, shared_dirs=("imdb",),
    license="no explicit license; for research, cite Maas et al. (2011), ACL",
    note="the 50,000 unlabelled train/unsup reviews are not loaded")
