"""Text helpers for the IMDB task: cleaning, tokenising, a train-only vocabulary, a token cache.

    tokens = tokenize("A <br />great film!")        # ['a', 'great', 'film', '!']
    corpus = token_cache(frames, lowercase=True, punctuation="!?")   # ids + offsets per split
    x = pad(corpus["train_ids"], corpus["train_offsets"], max_len=400, vocab_size=20000)

Word ids are ranks by frequency in the *training* split (0 = padding, 1 = unknown, 2 = most
frequent word, ...), so any vocabulary size is a simple cut (`ids >= vocab_size` -> unknown)
and one cached corpus serves every vocabulary size. Test words never seen in training are
unknown from the start: nothing about the test split leaks into the vocabulary.

The cache lives in <data home>/imdb/tokens/<key>/ as plain .npy files (no pickle), keyed by
the tokeniser settings and the imported dataset's build time (a re-import invalidates it).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import ExomlError

TOKENIZER_VERSION = 1  # bump when tokenize() changes: old caches are then ignored
PAD, UNK = 0, 1
_BR = re.compile(r"<br\s*/?>", re.I)           # IMDB reviews keep their HTML line breaks
_TAG = re.compile(r"<[^>]{0,40}>")              # any other stray tag
_WORD = r"[^\W_]+(?:'[^\W_]+)?"                 # letters/digits (any script), with one apostrophe: don't, film's


def tokenize(text: str, lowercase: bool = True, punctuation: str = "!?") -> list[str]:
    """Words plus the punctuation marks in `punctuation` as tokens of their own ('!' carries sentiment)."""
    text = _TAG.sub(" ", _BR.sub(" ", text))
    if lowercase:
        text = text.lower()
    return re.findall(token_pattern(punctuation), text)


def token_pattern(punctuation: str = "!?") -> str:
    """The regular expression whose matches are the tokens (what an exported model's users re-implement)."""
    return _WORD + (f"|[{re.escape(punctuation)}]" if punctuation else "")


def _cache_dir(settings: dict) -> Path:
    from ...data import data_home, get
    try:
        built = json.loads((get("imdb").processed / "meta.json").read_text()).get("built", "")
    except (OSError, json.JSONDecodeError):
        built = ""
    key = json.dumps({**settings, "version": TOKENIZER_VERSION, "built": built}, sort_keys=True)
    return data_home() / "imdb" / "tokens" / hashlib.sha1(key.encode()).hexdigest()[:12]


def _flat(token_lists: list[list[str]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((index.get(t, UNK) for toks in token_lists for t in toks), dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in token_lists])]).astype(np.int64)
    return ids, offsets


def token_cache(frames: dict, lowercase: bool = True, punctuation: str = "!?", progress=print) -> dict:
    """{'<split>_ids', '<split>_offsets', 'words', 'counts'} for the DataFrames in `frames`
    (train first: it defines the vocabulary); built once, then read from the cache."""
    settings = {"lowercase": lowercase, "punctuation": punctuation, "splits": sorted(frames),
                "sizes": {k: len(v) for k, v in frames.items()}}
    folder = _cache_dir(settings)
    names = [f"{s}_{k}" for s in frames for k in ("ids", "offsets")] + ["words", "counts"]
    if all((folder / f"{n}.npy").is_file() for n in names):
        try:
            out = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in names}
            out["words"] = out["words"].tobytes().decode("utf-8").split("\n")
            out["cache"] = str(folder)
            return out
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # damaged: rebuild below
    progress(f"tokenising {sum(map(len, frames.values())):,} reviews into {folder} (once)")
    tokens = {s: [tokenize(t, lowercase, punctuation) for t in df["text"]] for s, df in frames.items()}
    counter = Counter(t for toks in tokens["train"] for t in toks)
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))   # frequency, then alphabet: deterministic
    words = ["<pad>", "<unk>"] + [w for w, _ in ranked]
    index = {w: i for i, w in enumerate(words)}
    arrays = {"words": np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8),
              "counts": np.array([0, 0] + [c for _, c in ranked], dtype=np.int64)}
    for s, toks in tokens.items():
        arrays[f"{s}_ids"], arrays[f"{s}_offsets"] = _flat(toks, index)
    # Write into a temporary folder and rename it into place: a reader never sees half a cache.
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for n, arr in arrays.items():
        np.save(tmp / f"{n}.npy", arr, allow_pickle=False)
    (tmp / "settings.json").write_text(json.dumps(settings, indent=2))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    arrays["words"] = words
    arrays["cache"] = str(folder)
    return arrays


def lengths(offsets: np.ndarray) -> np.ndarray:
    return np.diff(offsets)


def pad(ids: np.ndarray, offsets: np.ndarray, max_len: int, vocab_size: int) -> np.ndarray:
    """(N, max_len) int64, right-padded with PAD; a longer review keeps its *last* max_len tokens
    (the verdict usually comes at the end); words ranked beyond vocab_size become UNK."""
    n = len(offsets) - 1
    lens = np.minimum(np.diff(offsets), max_len)
    out = np.zeros((n, max_len), dtype=np.int64)
    cols = np.arange(max_len)
    mask = cols[None, :] < lens[:, None]
    src = (offsets[1:] - lens)[:, None] + cols[None, :]
    out[mask] = ids[src[mask]]
    out[out >= vocab_size] = UNK
    return out


def encode(text: str, words: list[str], max_len: int, lowercase: bool = True, punctuation: str = "!?") -> np.ndarray:
    """One review as a (1, n) id array with the run's vocabulary (for `exoml predict`)."""
    index = {w: i for i, w in enumerate(words)}
    toks = tokenize(text, lowercase, punctuation)
    if not toks:
        raise ExomlError("the text has no words to classify")
    ids = np.array([index.get(t, UNK) for t in toks][-max_len:], dtype=np.int64)
    return ids[None, :]


def read_text_input(text: str | None, file: str | Path | None, max_bytes: int = 1_000_000) -> tuple[str, str]:
    """(text, name) from a command-line string or a UTF-8 text file; empty, binary or
    unreadable input is an ExomlError (one line, exit 2)."""
    if (text is None) == (file is None):
        raise ExomlError("give the review as one quoted argument or with --file FILE (not both)")
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ExomlError(f"file not found: {path}")
        raw = path.read_bytes()[:max_bytes + 1]
        if len(raw) > max_bytes:
            raise ExomlError(f"{path.name} is larger than {max_bytes:,} bytes: not a review")
        if b"\x00" in raw:
            raise ExomlError(f"{path.name} is not a text file (it holds binary data)")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ExomlError(f"{path.name} is not UTF-8 text") from None
        name = path.stem
    else:
        name = "text-" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:8]
    if not text.strip():
        raise ExomlError("the review is empty")
    if sum(not (c.isprintable() or c.isspace()) for c in text) > 0.05 * len(text):
        raise ExomlError("the input does not look like text (too many control characters)")
    return text, name
