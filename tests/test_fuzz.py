"""Fuzz the dataset parsers: thousands of mutated files, and each one either imports or is refused
with a DataError. No other exception, no hang, nothing written outside the data home.

Mutations act on the decompressed content (then recompressed, so the parser itself is reached)
or on the raw bytes (so the decompressor and archive layers are hit too). Examples per parser:
EXOML_FUZZ_EXAMPLES (default 300; 7 parsers, about 2,100 inputs per run). Derandomised, so CI
sees the same inputs every time.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exoml import data
from exoml.data.core import DataError

from fixtures import boston, cifar, electricity, imdb, kddcup, mnist

EXAMPLES = int(os.environ.get("EXOML_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _seed_files(name: str, folder: Path) -> None:
    """A valid tiny copy of each dataset in its real format."""
    if name == "mnist":
        mnist.write_mnist(folder, n_train=20, n_test=10)
    elif name == "cifar10":
        cifar.write_cifar_shards(folder, n_per_class=1)
    elif name == "cifar10-binary":
        cifar.write_cifar_binary(folder, n_per_class=1)
    elif name == "imdb":
        imdb.tar_tree(imdb.write_aclimdb(folder / "tree", n_per_label=2, unsup=False), folder / "aclImdb.tar.gz", "w:gz")
        shutil.rmtree(folder / "tree")
    elif name == "kddcup":
        kddcup.write_kddcup(folder, n_train=6, n_test=4)
    elif name == "boston":
        boston.write_housing(folder)
    elif name == "electricity":
        electricity.write_power(folder)


# (fuzz case, dataset it imports as)
CASES = [("mnist", "mnist"), ("cifar10", "cifar10"), ("cifar10-binary", "cifar10"), ("imdb", "imdb"),
         ("kddcup", "kddcup"), ("boston", "boston"), ("electricity", "electricity")]

mutation = st.tuples(
    st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]),
    st.floats(0, 1, allow_nan=False),          # where, as a fraction of the length
    st.integers(1, 64),                        # how many bytes
    st.binary(min_size=1, max_size=16),        # what to insert / xor with
    st.booleans(),                             # mutate the decompressed content?
    st.integers(0, 100),                       # which file of the set
)


def _mutate(blob: bytes, op: str, where: float, n: int, payload: bytes) -> bytes:
    i = int(where * len(blob))
    if op == "flip":
        mixed = bytes(b ^ (payload[k % len(payload)] or 1) for k, b in enumerate(blob[i:i + n]))
        return blob[:i] + mixed + blob[i + n:]
    if op == "truncate":
        return blob[:i]
    if op == "insert":
        return blob[:i] + payload * (1 + n // 16) + blob[i:]
    if op == "delete":
        return blob[:i] + blob[i + n:]
    return blob[:i] + blob[i:i + n] * 2 + blob[i + n:]  # duplicate a stretch


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case,dataset", CASES, ids=[c for c, _ in CASES])
def test_parsers_survive_mutations(case, dataset, tmp_path):
    seed = tmp_path / "seed"
    _seed_files(case, seed)
    files = sorted(p for p in seed.rglob("*") if p.is_file())
    home = Path(os.environ["EXOML_DATA"])
    outcomes = {"imported": 0, "refused": 0}

    @FUZZ
    @given(mutation)
    def one(m):
        op, where, n, payload, inner, which = m
        with tempfile.TemporaryDirectory(dir=tmp_path) as work:
            work = Path(work) / "in"
            shutil.copytree(seed, work)
            target = work / files[which % len(files)].relative_to(seed)
            blob = target.read_bytes()
            if inner and blob[:2] == b"\x1f\x8b":
                blob = gzip.compress(_mutate(gzip.decompress(blob), op, where, n, payload))
            else:
                blob = _mutate(blob, op, where, n, payload)
            target.write_bytes(blob)
            before = _tree(tmp_path)
            try:
                data.import_(dataset, [work], subset=True)
                data.load(dataset)
                outcomes["imported"] += 1
            except DataError as e:
                assert str(e) and "\n" not in str(e)
                outcomes["refused"] += 1
            written = {p for p in _tree(tmp_path) - before if not p.startswith(str(home.relative_to(tmp_path)))}
            assert not written, f"files written outside the data home: {sorted(written)[:3]}"
            data._loaded.clear()

    one()
    assert outcomes["refused"] > 0  # the mutations do reach the validation
