"""The data layer's machinery: where files live, download with hashes, import, the processed cache.

Layout under the data home ($EXOML_DATA, else the user cache dir, e.g. ~/.cache/exoml):

    <home>/<dataset>/raw/<official file name>     downloads (pooch: progress bar, sha256, atomic)
    <home>/<dataset>/processed/<array>.npy        the validated arrays, one .npy each
    <home>/<dataset>/processed/meta.json          shapes, dtypes, class names, counts, source

A dataset module supplies a `Dataset` (its files and a `build(paths, subset)` that parses
and validates local files into arrays). `fetch` downloads the official files into raw/ and
builds; `import_` builds from files the user already has; both write the cache atomically
(a temporary folder renamed into place), so a failure leaves the old cache or none.
Loading the cache is np.load of plain .npy files (no pickle): CIFAR-10 loads in well under 2 s.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np

from ..errors import ExomlError
from ..toolkit.integrity import array_sha256
from ..toolkit.runs import atomic_write_text


class DataError(ExomlError):
    """A dataset problem the user can fix: missing, corrupt, wrong format, wrong checksum."""


def data_home() -> Path:
    env = os.environ.get("EXOML_DATA")
    if env:
        return Path(env).expanduser()
    import pooch
    return Path(pooch.os_cache("exoml"))


@dataclass(frozen=True)
class RemoteFile:
    name: str            # the official file name
    url: str             # the official address
    hash: str | None     # "sha256:<hex>" (or "md5:<hex>" where only md5 is published); None: unchecked
    size: int | None = None  # bytes, where known
    optional: bool = False


@dataclass
class Dataset:
    name: str
    title: str
    homepage: str
    files: list[RemoteFile]
    counts: dict[str, int]                                  # official row counts per split
    build: Callable[[list[Path], bool], tuple[dict, dict]]  # (paths, subset) -> (arrays, meta)
    load: Callable[[dict, dict], object]                    # (arrays, meta) -> what the user gets
    shared_dirs: tuple[str, ...] = ()                       # folders of a local copy that hold it
    note: str = ""
    license: str = ""
    extra: dict = field(default_factory=dict)

    # --- paths
    @property
    def root(self) -> Path:
        return data_home() / self.name

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    def is_cached(self) -> bool:
        return (self.processed / "meta.json").is_file()


# ---------------------------------------------------------------- download ------------

def _mirror_source(rf: RemoteFile) -> tuple[str, bool]:
    """(address, is_local_folder) for a file, honouring EXOML_DATA_MIRROR."""
    mirror = os.environ.get("EXOML_DATA_MIRROR", "").strip()
    if not mirror:
        return rf.url, False
    if re.match(r"^[a-z]+://", mirror) and not mirror.startswith("file://"):
        return mirror.rstrip("/") + "/" + rf.name, False
    folder = Path(mirror.removeprefix("file://")).expanduser()
    return str(folder / rf.name), True


def file_hash_ok(path: Path, expected: str | None) -> bool:
    if not expected:
        return True
    import pooch
    alg, _, hexdigest = expected.partition(":")
    return pooch.file_hash(str(path), alg=alg).lower() == hexdigest.lower()


def download(ds: Dataset, rf: RemoteFile, progress: bool = True) -> Path:
    """Put rf into <home>/<ds>/raw/, checking its hash; return the path. Errors are DataError."""
    import pooch
    import requests
    raw = ds.root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    target = raw / rf.name
    source, local = _mirror_source(rf)
    hint = (f"to use a copy you already have: exoml data import {ds.name} PATH... "
            f"(or set EXOML_DATA_MIRROR to a folder or URL holding the official files)")
    if target.exists() and file_hash_ok(target, rf.hash):
        return target
    if local:
        src = Path(source)
        if not src.is_file():
            raise DataError(f"{rf.name}: not found in mirror folder {src.parent}")
        tmp = target.with_name(f".{rf.name}.part")
        shutil.copyfile(src, tmp)
        if not file_hash_ok(tmp, rf.hash):
            tmp.unlink(missing_ok=True)
            raise DataError(f"{rf.name}: checksum mismatch (expected {rf.hash}); file rejected")
        os.replace(tmp, target)
        return target
    try:
        # pooch downloads to a temporary file and moves it into place only when the hash matches.
        got = pooch.retrieve(source, known_hash=rf.hash, fname=rf.name, path=raw, progressbar=progress,
                             downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60))
    except ValueError as e:
        if "hash" in str(e).lower():
            raise DataError(f"{rf.name}: checksum mismatch from {source} (expected {rf.hash}); "
                            "the download was discarded") from None
        raise DataError(f"{rf.name}: download from {source} failed: {e}") from None
    except (requests.exceptions.RequestException, OSError) as e:
        kind = type(e).__name__
        raise DataError(f"cannot download {rf.name} from {source} ({kind}); {hint}") from None
    return Path(got)


# ---------------------------------------------------------------- local files ---------

def expand(paths: list[Path], max_depth: int = 3) -> list[Path]:
    """The files among `paths`, folders expanded (a few levels deep), sorted, no duplicates."""
    out: list[Path] = []

    def unreadable(err: OSError):
        raise DataError(f"cannot read the folder {err.filename}: {err.strerror.lower()}")
    for p in map(Path, paths):
        if p.is_dir():
            if not os.access(p, os.R_OK | os.X_OK):
                raise DataError(f"cannot read the folder {p}: permission denied")
            base_depth = len(p.parts)
            for root, dirs, files in os.walk(p, onerror=unreadable):
                dirs.sort()
                if len(Path(root).parts) - base_depth >= max_depth:
                    dirs[:] = []
                out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
        elif p.is_file():
            out.append(p)
        elif p.is_symlink():
            raise DataError(f"{p} is a broken symbolic link (or a loop of them)")
        else:
            raise DataError(f"no such file or folder: {p}")
    seen, uniq = set(), []
    for p in out:
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link, or links that point at each other
            continue                      # not a data file: skipped like any other stray name
        if real not in seen:
            seen.add(real)
            uniq.append(p)
    return uniq


def find_file(files: list[Path], pattern: str, what: str, required: bool = True) -> Path | None:
    """The single file whose name matches the regex `pattern` (full match)."""
    hits = [p for p in files if re.fullmatch(pattern, p.name)]
    if not hits:
        if required:
            raise DataError(f"missing file: {what} (looked for a name matching {pattern!r})")
        return None
    if len(hits) > 1:
        # The same file in two forms (e.g. .gz and raw): take the first, they must agree anyway.
        hits.sort(key=lambda p: (len(p.name), str(p)))
    return hits[0]


def open_maybe_compressed(path: Path):
    """A binary file object for a plain, .gz, .xz, .bz2 or single-member .zip file."""
    import bz2
    import gzip
    import lzma
    import zipfile
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")
    if magic[:4] == b"PK\x03\x04":
        zf = zipfile.ZipFile(path)
        names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
        if len(names) != 1:
            raise DataError(f"{path.name}: expected one file inside the zip, found {len(names)}")
        return zf.open(names[0])
    return open(path, "rb")


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """Whole (decompressed) content; a corrupt or truncated archive is a DataError."""
    import gzip
    import lzma
    import zipfile
    import zlib
    try:
        with open_maybe_compressed(path) as fh:
            data = fh.read(limit + 1 if limit else -1)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile) as e:
        raise DataError(f"{Path(path).name}: corrupt or truncated file ({e})") from None
    if limit and len(data) > limit:
        raise DataError(f"{Path(path).name}: larger than the {limit} bytes this format allows")
    return data


def safe_member_name(name: str, archive: Path) -> PurePosixPath:
    """Reject members that would escape the folder they are read into (absolute, '..')."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"{archive.name}: unsafe member path {name!r} (escapes the target folder); archive rejected")
    return p


def iter_tar(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(member path, content) for each regular file of a tar (any compression), streamed;
    links and devices are skipped, unsafe names rejected, corruption is a DataError.

    A truncated archive must never read as a shorter valid one: tarfile's own stream reader ends
    quietly when the data stops at a header boundary. So we decompress with gzip/lzma/bz2 file
    objects (they raise EOFError on a missing end-of-stream) and read each stream to its end; an
    uncompressed tar must end with its zero end-of-archive blocks."""
    import bz2
    import gzip
    import lzma
    import zlib
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw:
            magic = raw.read(6)
            raw.seek(max(size - 1024, 0))
            tail = raw.read()
        opener = (gzip.open if magic[:2] == b"\x1f\x8b" else lzma.open if magic == b"\xfd7zXZ\x00"
                  else bz2.open if magic[:3] == b"BZh" else None)
        if opener is None:
            if size % 512 or len(tail) < 1024 or tail.strip(b"\0"):
                raise EOFError("no end-of-archive marker: the tar file is cut short")
        with (opener or open)(path, "rb") as fh:
            # Streaming mode ("r|"): one pass over the bytes, no seeking back.
            with tarfile.open(fileobj=fh, mode="r|") as tf:
                for m in tf:
                    name = safe_member_name(m.name, path)
                    if m.issym() or m.islnk():
                        safe_member_name(m.linkname, path)
                        continue
                    if not m.isfile():
                        continue
                    f = tf.extractfile(m)
                    yield name, f.read() if f else b""
            while fh.read(1 << 20):  # the rest of the stream (end blocks, padding): EOFError if truncated
                pass
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file") from None
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as e:
        detail = " ".join(str(e).split())  # tarfile lists every compression it tried, over several lines
        raise DataError(f"{path.name}: corrupt or truncated archive ({detail[:160]})") from None


# ---------------------------------------------------------------- processed cache -----

def save_cache(ds: Dataset, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays + meta.json into a temporary folder, then swap it in for processed/."""
    ds.root.mkdir(parents=True, exist_ok=True)
    tmp = ds.root / f".processed.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        shapes = {}
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype == object:
                raise TypeError(f"{key}: object arrays are not cached (no pickle)")
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
            shapes[key] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": array_sha256(key, arr)}
        meta = {**meta, "dataset": ds.name, "arrays": shapes, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2))
        old = ds.root / f".processed.old{os.getpid()}"
        if ds.processed.exists():
            os.replace(ds.processed, old)
        os.replace(tmp, ds.processed)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cache(ds: Dataset, mmap: bool = False, check_hashes: bool = False) -> tuple[dict, dict]:
    """The cached arrays and meta.json, checked against meta.json: shapes, dtypes, label ranges, and
    with `check_hashes` (exoml data verify) the content hashes recorded at import."""
    try:
        meta = json.loads((ds.processed / "meta.json").read_text())
    except FileNotFoundError:
        raise DataError(f"dataset {ds.name} is not available: run `exoml data fetch {ds.name}` "
                        f"or `exoml data import {ds.name} PATH...`") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"dataset {ds.name}: damaged cache ({e}); import it again") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arrays"), dict) or not all(
            isinstance(i, dict) and {"shape", "dtype"} <= set(i) for i in meta["arrays"].values()):
        raise DataError(f"dataset {ds.name}: damaged cache (meta.json does not describe its arrays); import it again")
    arrays = {}
    for key, info in meta["arrays"].items():
        try:
            arr = np.load(ds.processed / f"{key}.npy", allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as e:
            raise DataError(f"dataset {ds.name}: damaged cache file {key}.npy ({e}); import it again") from None
        if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"]:
            raise DataError(f"dataset {ds.name}: cache file {key}.npy does not match meta.json; import it again")
        if check_hashes and info.get("sha256") and array_sha256(key, arr) != info["sha256"]:
            raise DataError(f"dataset {ds.name}: cache file {key}.npy changed since it was imported "
                            "(content hash mismatch); import it again")
        arrays[key] = arr
    classes = meta.get("classes")
    for key, arr in arrays.items():  # a label outside the classes would crash training much later
        if key.startswith("y_") and isinstance(classes, list) and arr.dtype.kind in "iu" and arr.size and (
                arr.min() < 0 or arr.max() >= len(classes)):
            raise DataError(f"dataset {ds.name}: cache file {key}.npy holds labels outside 0..{len(classes) - 1}; "
                            "import it again")
    return arrays, meta


def check_counts(ds: Dataset, counts: dict[str, int], subset: bool) -> None:
    """Official counts must match exactly, unless the user imports a declared subset."""
    for split, n in counts.items():
        want = ds.counts.get(split)
        if want is None:
            continue
        if n == 0:
            raise DataError(f"{ds.name}: the {split} split is empty")
        if not subset and n != want:
            raise DataError(f"{ds.name}: {split} has {n} rows, the official dataset has {want} "
                            f"(use --subset to import a partial copy on purpose)")
        if subset and n > want:
            raise DataError(f"{ds.name}: {split} has {n} rows, more than the official {want}")
