"""IMDB, KDD Cup 99, Boston Housing, household power and Iris: import tiny files written in the
real formats, load them back, and check every documented error. Real-data tests (marked
realdata) read ../shared/data and assert the official counts; they skip when it is absent."""
from __future__ import annotations

import gzip
import lzma
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from exoml import data
from exoml.data.core import DataError
from conftest import shared
from fixtures import boston as fb
from fixtures import electricity as fe
from fixtures import imdb as fi
from fixtures import kddcup as fk


def _import(name, paths):
    data.import_(name, paths, subset=True)
    data._loaded.clear()
    return data.load(name)


# ------------------------------------------------------------------ metadata ----------

@pytest.mark.parametrize("name,folder", [("imdb", "imdb"), ("kddcup", "kddcup99"), ("boston", "boston"),
                                         ("electricity", "electricity"), ("iris", None)])
def test_dataset_declarations(name, folder):
    ds = data.get(name)
    assert ds.name == name and ds.homepage.startswith("http") and ds.license and ds.counts
    assert ds.shared_dirs == ((folder,) if folder else ())
    for rf in ds.files:
        assert rf.url.startswith("http") and (rf.hash is None or rf.hash.startswith("sha256:"))
    assert data.get(name).build.__module__.endswith(name)


# ------------------------------------------------------------------ IMDB ---------------

def test_imdb_folder(tmp_path):
    fi.write_aclimdb(tmp_path / "src", n_per_label=5)
    b = _import("imdb", [tmp_path / "src"])
    assert b.classes == ["neg", "pos"] and b.vocab == ["the", "and", "a", "café"]
    for split in ("train", "test"):
        df = getattr(b, split)
        assert list(df.columns) == ["text", "label", "rating", "id"] and len(df) == 10
        assert [str(df[c].dtype) for c in ("label", "rating", "id")] == ["int64"] * 3
        assert pd.api.types.is_string_dtype(df["text"])
        assert df["label"].tolist() == [0] * 5 + [1] * 5 and df["id"].tolist() == list(range(5)) * 2
        assert df.loc[df.label == 1, "rating"].between(7, 10).all()
        assert df.loc[df.label == 0, "rating"].between(1, 4).all()
        assert df["text"].iloc[0] == fi.review(split, "neg", 0)
    assert "café" in "".join(b.train["text"])  # UTF-8 survives the blob + offsets cache
    assert not b.train["text"].str.contains("unlabelled").any()  # unsup/ ignored


def test_imdb_tar_xz_and_gz_equal_folder(tmp_path):
    root = fi.write_aclimdb(tmp_path / "src", n_per_label=3)
    a = _import("imdb", [root])  # the aclImdb folder itself
    for mode, suffix in (("w:xz", "tar.xz"), ("w:gz", "tar.gz")):
        arch = fi.tar_tree(root, tmp_path / f"aclImdb.{suffix}", mode)
        b = _import("imdb", [arch])
        pd.testing.assert_frame_equal(a.train, b.train)
        pd.testing.assert_frame_equal(a.test, b.test)
        # a folder that holds the archive, as in ../shared/data/imdb
        holder = tmp_path / f"holder-{suffix}"
        holder.mkdir()
        shutil.copy(arch, holder)
        pd.testing.assert_frame_equal(a.test, _import("imdb", [holder]).test)


def test_imdb_full_import_needs_official_counts(tmp_path):
    fi.write_aclimdb(tmp_path, n_per_label=2)
    with pytest.raises(DataError, match="official"):
        data.import_("imdb", [tmp_path])


@pytest.mark.parametrize("fname,content,match", [
    ("pos/7_5.txt", b"meh", "rating 5 is impossible for a pos"),
    ("neg/8_9.txt", b"meh", "rating 9 is impossible for a neg"),
    ("pos/review.txt", b"x", "unexpected file"),
    ("neg/9_1.txt", b"\xff\xfe bad", "not UTF-8"),
])
def test_imdb_bad_review_files(tmp_path, fname, content, match):
    root = fi.write_aclimdb(tmp_path, n_per_label=2)
    (root / "train" / fname).write_bytes(content)
    with pytest.raises(DataError, match=match):
        data.import_("imdb", [root], subset=True)


def test_imdb_archive_errors(tmp_path):
    with pytest.raises(DataError, match="unsafe member"):
        data.import_("imdb", [fi.tar_with_member(tmp_path / "evil.tar.xz", "../evil/train/pos/0_8.txt")], subset=True)
    with pytest.raises(DataError, match="unsafe member"):
        data.import_("imdb", [fi.tar_with_member(tmp_path / "abs.tar.gz", "/etc/train/pos/0_8.txt", mode="w:gz")],
                     subset=True)
    root = fi.write_aclimdb(tmp_path / "t", n_per_label=3)
    arch = fi.tar_tree(root, tmp_path / "cut.tar.xz")
    arch.write_bytes(arch.read_bytes()[: arch.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        data.import_("imdb", [arch], subset=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing file"):
        data.import_("imdb", [tmp_path / "empty"], subset=True)
    assert not data.get("imdb").is_cached()  # a failed import leaves no cache


# ------------------------------------------------------------------ KDD Cup 99 ---------

def test_kddcup_gz(tmp_path):
    fk.write_kddcup(tmp_path, n_train=12, n_test=8)
    b = _import("kddcup", [tmp_path])
    assert len(b.train) == 12 and len(b.test) == 8
    assert list(b.train.columns) == fk.FEATURES + ["label"] and b.feature_names == fk.FEATURES
    assert b.train["label"].iloc[0] == "normal" and not b.train["label"].astype(str).str.endswith(".").any()
    assert set(b.test["label"]) == {"normal", "smurf", "mailbomb", "snmpgetattack"}
    for c in ("protocol_type", "service", "flag", "label"):  # shared categories: codes agree
        assert b.train[c].dtype == "category"
        assert list(b.train[c].cat.categories) == list(b.test[c].cat.categories)
    assert b.train["src_bytes"].dtype == np.int64 and b.train["serror_rate"].dtype == np.float64
    assert b.train["src_bytes"].tolist() == [100 + i for i in range(12)]
    assert b.attack_types == fk.ATTACKS and b.attack_types.get("mailbomb") is None
    assert b.categorical == [f for f in fk.FEATURES if f in fk.SYMBOLIC] and len(b.categorical) == 7


@pytest.mark.parametrize("kind", ["plain", "xz", "zip"])
def test_kddcup_other_compressions(tmp_path, kind):
    files = fk.write_kddcup(tmp_path / "gz")
    ref = _import("kddcup", [tmp_path / "gz"])
    out = tmp_path / kind
    out.mkdir()
    for p in files:
        shutil.copy(p, out)
    for name in ("kddcup.data_10_percent", "corrected"):
        raw = gzip.decompress((out / f"{name}.gz").read_bytes())
        (out / f"{name}.gz").unlink()
        if kind == "plain":
            (out / (name + "_corrected" if name.startswith("kdd") else name)).write_bytes(raw)
        elif kind == "xz":
            (out / f"{name}.xz").write_bytes(lzma.compress(raw))
        else:
            with zipfile.ZipFile(out / f"{name}.zip", "w") as zf:
                zf.writestr(name, raw)
    b = _import("kddcup", [out])
    pd.testing.assert_frame_equal(ref.train, b.train)
    pd.testing.assert_frame_equal(ref.test, b.test)


def _bad(row: str, i: int, new: str) -> str:
    vals = row.rstrip("\n").split(",")
    vals[i] = new
    return ",".join(vals) + "\n"


@pytest.mark.parametrize("mutate,match", [
    (lambda r: r.rstrip("\n") + ",7\n", "Expected 42 fields|fields per line"),
    (lambda r: r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1], "missing fields"),
    (lambda r: _bad(r, 4, "lots"), "column src_bytes has non-numeric value 'lots'"),
    (lambda r: _bad(r, 41, "normal"), "does not end with '.'"),
    (lambda r: _bad(r, 41, "martians."), "training labels not declared"),
])
def test_kddcup_bad_rows(tmp_path, mutate, match):
    rows = [fk.row(i, "normal") for i in range(6)]
    rows[3] = mutate(rows[3])
    fk.write_kddcup(tmp_path, lines={"train": rows})
    with pytest.raises(DataError, match=match):
        data.import_("kddcup", [tmp_path], subset=True)


def test_kddcup_file_errors(tmp_path):
    files = fk.write_kddcup(tmp_path)
    files[3].write_bytes(files[3].read_bytes()[:-12])  # truncated gzip (crc/length trailer gone)
    with pytest.raises(DataError, match="corrupt or truncated"):
        data.import_("kddcup", [tmp_path], subset=True)
    files[3].unlink()
    with pytest.raises(DataError, match="missing file: corrected"):
        data.import_("kddcup", [tmp_path], subset=True)
    fk.write_kddcup(tmp_path)
    files[0].write_text("\n".join(files[0].read_text().splitlines()[:-1]) + "\n")  # 40 features
    with pytest.raises(DataError, match="40 features declared"):
        data.import_("kddcup", [tmp_path], subset=True)
    fk.write_kddcup(tmp_path)
    files[1].write_text("smurf dos\nfoo bar\n")
    with pytest.raises(DataError, match="training_attack_types: cannot read line 'foo bar'"):
        data.import_("kddcup", [tmp_path], subset=True)
    fk.write_kddcup(tmp_path)
    with pytest.raises(DataError, match="official"):
        data.import_("kddcup", [tmp_path])


# ------------------------------------------------------------------ Boston -------------

def test_boston_layouts_agree(tmp_path):
    ref = _import("boston", [fb.write_housing(tmp_path / "uci")])
    assert list(ref.frame.columns) == fb.COLUMNS and (ref.frame.dtypes == np.float64).all()
    assert ref.frame.iloc[0].tolist() == fb.ROWS[0] and ref.frame.shape == (3, 14)
    assert ref.feature_names == fb.COLUMNS[:-1] and ref.target == "MEDV" and "B" in ref.note
    for path in (fb.write_statlib(tmp_path / "statlib"), fb.write_csv(tmp_path / "csv", index=True),
                 fb.write_csv(tmp_path / "csv2", columns=fb.COLUMNS[::-1], rows=[r[::-1] for r in fb.ROWS],
                              lower=False)):
        pd.testing.assert_frame_equal(ref.frame, _import("boston", [path.parent]).frame)


@pytest.mark.parametrize("write,match", [
    (lambda d: fb.write_csv(d, columns=fb.COLUMNS[:-1], rows=[r[:-1] for r in fb.ROWS]), "missing column.*MEDV"),
    (lambda d: fb.write_csv(d, columns=fb.COLUMNS + ["X"], rows=[r + [1] for r in fb.ROWS]), "unexpected.*X"),
    (lambda d: fb.write_csv(d, rows=[fb.ROWS[0], fb.ROWS[1][:5] + ["NA"] + fb.ROWS[1][6:]]), "non-numeric value 'NA'"),
    (lambda d: fb.write_housing(d, rows=[fb.ROWS[0], fb.ROWS[1][:4] + ["x1"] + fb.ROWS[1][5:]]), "non-numeric value 'x1'"),
    (lambda d: fb.write_housing(d, rows=[fb.ROWS[0], fb.ROWS[1][:6] + ["nan"] + fb.ROWS[1][7:]]), "row 2: AGE is nan"),
    (lambda d: fb.write_housing(d, rows=[fb.ROWS[0], fb.ROWS[1][:13]]), "line 2 has 13 values"),
    (lambda d: fb.write_housing(d, rows=[fb.ROWS[0][:3] + [7] + fb.ROWS[0][4:]]), "CHAS must be 0 or 1"),
    (lambda d: fb.write_housing(d, rows=[[r[13]] + r[1:13] + [r[0]] for r in fb.ROWS]),  # CRIM and MEDV swapped
     "MEDV = 0.00632 is outside its range"),
    (lambda d: d.mkdir(), "missing file"),
])
def test_boston_errors(tmp_path, write, match):
    write(tmp_path / "b")
    with pytest.raises(DataError, match=match):
        data.import_("boston", [tmp_path / "b"], subset=True)


def test_boston_full_import_needs_506_rows(tmp_path):
    with pytest.raises(DataError, match="506"):
        data.import_("boston", [fb.write_housing(tmp_path)])


# ------------------------------------------------------------------ household power ----

@pytest.mark.parametrize("compress", ["", "gz", "xz", "zip"])
def test_power(tmp_path, compress):
    b = _import("electricity", [fe.write_power(tmp_path, compress=compress)])
    f = b.frame
    assert f.shape == (10, 7) and (f.dtypes == np.float64).all() and list(f.columns) == fe.HEADER.split(";")[2:]
    assert isinstance(f.index, pd.DatetimeIndex) and f.index.name == "datetime"
    assert f.index[0] == pd.Timestamp("2006-12-31 23:57") and f.index[3] == pd.Timestamp("2007-01-01 00:00")
    assert f.index.is_monotonic_increasing and b.missing_rows == 2
    assert f.iloc[4:6].isna().all().all() and not f.drop(f.index[4:6]).isna().any().any()
    assert f["Global_active_power"].iloc[0] == 4.0 and f["Sub_metering_3"].iloc[1] == 18.0


def _lines(i, new):
    ls = fe.power_lines()
    ls[i] = new
    return ls


@pytest.mark.parametrize("kwargs,match", [
    (dict(header=fe.HEADER.rsplit(";", 1)[0]), "header is"),
    (dict(header=fe.HEADER + ";Extra"), "header is"),
    (dict(header=fe.HEADER.replace("Voltage", "voltage")), "header is"),
    (dict(lines=_lines(2, "31/12/2006;23:59:00;4.2;0.4;abc;18.4;0;1;17")), "could not convert string to float: 'abc'"),
    (dict(lines=_lines(2, "31/12/2006;23:59:00;4.2;;234;18.4;0;1;17")), "could not convert string to float: ''"),
    (dict(lines=_lines(2, "31/12/2006;23:59:00;4.2;0.4;234")), "line 4 does not have 9"),
    (dict(lines=_lines(2, "31/12/2006;23:57:00;4.2;0.4;234;18.4;0;1;17")), "line 4: time .* strictly increasing"),
    (dict(lines=_lines(2, "2006-12-31;23:59:00;4.2;0.4;234;18.4;0;1;17")), "line 4: bad date .2006-12-31."),
    (dict(lines=_lines(2, "31/12/2006;23h59;4.2;0.4;234;18.4;0;1;17")), "line 4: bad time .23h59."),
    (dict(lines=[]), "no data rows"),
])
def test_power_errors(tmp_path, kwargs, match):
    p = fe.write_power(tmp_path, **kwargs)
    with pytest.raises(DataError, match=match):
        data.import_("electricity", [p], subset=True)


def test_power_corrupt_and_missing(tmp_path):
    p = fe.write_power(tmp_path / "a", compress="gz")
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="corrupt or truncated"):
        data.import_("electricity", [p], subset=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    (tmp_path / "b" / "other.txt").write_text("y")
    with pytest.raises(DataError, match="missing file"):
        data.import_("electricity", [tmp_path / "b"], subset=True)
    with pytest.raises(DataError, match="2075259"):
        data.import_("electricity", [fe.write_power(tmp_path / "c")])


# ------------------------------------------------------------------ Iris ---------------

def test_iris_builds_on_first_load():
    b = data.load("iris")  # files=[]: built from scikit-learn's bundled copy, no import needed
    assert b.frame.shape == (150, 5) and b.feature_names == list(b.frame.columns[:4])
    assert (b.frame[b.feature_names].dtypes == np.float64).all() and b.target.dtype == np.int64
    assert b.classes == ["setosa", "versicolor", "virginica"] and np.bincount(b.target).tolist() == [50] * 3
    assert (b.frame["target"].to_numpy() == b.target).all()
    assert data.verify("iris")["counts"] == {"rows": 150}


# ------------------------------------------------------------------ real data ----------

@pytest.mark.realdata
def test_real_imdb():
    meta = data.import_("imdb", [shared("imdb")])
    assert meta["counts"] == {"train": 25000, "test": 25000} and not meta["subset"]
    b = data.load("imdb")
    for df in (b.train, b.test):
        assert df["label"].value_counts().to_dict() == {0: 12500, 1: 12500}
        assert df.groupby("label")["id"].apply(lambda s: sorted(s) == list(range(12500))).all()
    assert len(b.vocab) > 80000


@pytest.mark.realdata
def test_real_kddcup():
    meta = data.import_("kddcup", [shared("kddcup99")])
    assert meta["counts"] == {"train": 494021, "test": 311029}
    b = data.load("kddcup")
    assert (b.train["label"] == "normal").sum() == 97278 and (b.test["label"] == "normal").sum() == 60593
    assert b.train["label"].nunique() == 23 and len(b.attack_types) == 22


@pytest.mark.realdata
def test_real_boston():
    data.import_("boston", [shared("boston")])
    b = data.load("boston")
    assert b.frame.shape == (506, 14)
    assert b.frame.iloc[0].tolist() == [0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98, 24.0]


@pytest.mark.realdata
def test_real_power():
    data.import_("electricity", [shared("electricity")])
    b = data.load("electricity")
    f = b.frame
    assert len(f) == 2075259 and f.index[0] == pd.Timestamp("2006-12-16 17:24")
    assert f.index[-1] == pd.Timestamp("2010-11-26 21:02") and 0 < b.missing_rows < 30000


@pytest.mark.parametrize("suffix", ["tar.xz", "tar.gz", "tar"])
def test_imdb_archive_cut_anywhere_is_truncated(tmp_path, suffix):
    """A download cut at any byte, compressed or not, is reported as truncated: never read as a
    shorter archive (tarfile alone stops quietly when the data ends at a header boundary)."""
    root = fi.write_aclimdb(tmp_path / "t", n_per_label=3)
    mode = {"tar.xz": "w:xz", "tar.gz": "w:gz", "tar": "w"}[suffix]
    whole = fi.tar_tree(root, tmp_path / f"whole.{suffix}", mode).read_bytes()
    assert data.import_("imdb", [tmp_path / f"whole.{suffix}"], subset=True)  # the whole file imports
    cuts = sorted({int(len(whole) * f) for f in np.linspace(0.05, 0.98, 25)} | {len(whole) - 1024, len(whole) - 512})
    if suffix == "tar":  # cutting only zero padding after the end-of-archive blocks loses nothing
        cuts = [c for c in cuts if c <= len(whole.rstrip(b"\0"))]
    assert len(cuts) >= 20
    for cut in cuts:
        part = tmp_path / f"cut{cut}.{suffix}"
        part.write_bytes(whole[:cut])
        with pytest.raises(DataError, match="corrupt or truncated"):
            data.import_("imdb", [part], subset=True)
