"""`exoml serve` through its HTTP interface (FastAPI's TestClient) on tiny trained runs: every page,
every kind of bad input (a 4xx status and the message in the page, never a 500), no path out of
the runs folder, nothing written."""
from __future__ import annotations

import io
import re
import shutil
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi", reason="exoml serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (the dev extra)")
from fastapi.testclient import TestClient  # noqa: E402

from exoml.cli import main  # noqa: E402
from exoml.serve.app import MAX_FORM_BYTES, create_app  # noqa: E402

from fixtures import serve_runs  # noqa: E402
from fixtures.kddcup import row as kdd_row  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return serve_runs.build(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(runs):
    return TestClient(create_app(runs))


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def digit_one() -> bytes:
    """A dark '1' on white paper, as a phone photo of a digit would be."""
    im = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(im).line([(60, 15), (60, 105)], fill=0, width=12)
    return png(im)


def answer(r) -> str:
    assert r.status_code == 200, error(r)
    found = re.search(r'<section id="answer">(.*)</section>', r.text, re.S)
    assert found, r.text[-500:]
    return found.group(1)


def error(r) -> str:
    found = re.search(r'<p class="error" role="alert" data-status="(\d+)">(.*?)</p>', r.text, re.S)
    assert found, r.text[-800:]
    assert int(found.group(1)) == r.status_code
    return found.group(2)


def form_values(page: str) -> dict:
    return dict(re.findall(r'<input type=number step=any name="([^"]+)" id="f-[^"]+" value="([^"]*)"', page))


# ---------------------------------------------------------------- pages -------------------

def test_index_lists_every_task_with_a_run(client):
    r = client.get("/")
    assert r.status_code == 200
    listed = re.findall(r'<li><a href="/t/([\w-]+)">', r.text)
    assert sorted(listed) == sorted(serve_runs.TASKS)
    assert "fashion-mnist" in r.text and "exoml run cifar100" in r.text  # the tasks without a run, and how


@pytest.mark.parametrize("task", serve_runs.TASKS)
def test_every_task_page_has_its_form_and_run_chooser(client, runs, task):
    r = client.get(f"/t/{task}")
    assert r.status_code == 200
    (run,) = [p.name for p in (runs / task).iterdir()]
    assert f'<option value="{run}" selected>{run} (latest)</option>' in r.text
    assert '<form method=post action="/t/' + task in r.text and 'id="submit"' in r.text
    assert client.get(f"/t/{task}?run={run}").status_code == 200


def test_mnist_upload_shows_input_top5_and_saliency(client):
    body = answer(client.post("/t/mnist", files={"image": ("one.png", digit_one(), "image/png")}))
    assert re.search(r'<p class="verdict" id="verdict">\d \(\d+\.\d%\)</p>', body)
    assert body.count('class="bar-row"') == 5
    pictures = re.findall(r'<img src="data:image/png;base64,([^"]+)"', body)
    assert len(pictures) == 2 and "what the network sees" in body and "saliency" in body
    import base64
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(pictures[0]))))
    assert seen.shape[0] == seen.shape[1] and seen.shape[0] % 28 == 0
    assert seen.max() > 200 and seen[0].max() == 0  # white on black, centred: an empty border


def test_cifar10_upload_of_a_photo(client):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    body = answer(client.post("/t/cifar10", files={"image": ("p.jpg", png(photo), "image/jpeg")}))
    assert body.count('class="bar-row"') == 5


def test_imdb_review_probability_and_word_influence(client):
    body = answer(client.post("/t/imdb", data={"review": "What a film. I loved it!"}))
    assert re.search(r"(positive|negative): p\(positive\) = 0\.\d{3}", body)
    words = re.findall(r'<span class="tok" title="([+-]\d\.\d{4})" data-w="[^"]+" style="[^"]+">([^<]+)</span>', body)
    assert [w for _, w in words] == ["what", "a", "film", "i", "loved", "it", "!"] or \
        [w.rstrip("?") for _, w in words] == ["what", "a", "film", "i", "loved", "it", "!"]


def test_iris_measurements_give_a_cluster_on_the_pca_plot(client):
    page = client.get("/t/iris").text
    names = list(form_values(page))
    assert len(names) == 4
    body = answer(client.post("/t/iris", data=dict(zip(names, ["5.1", "3.5", "1.4", "0.2"]))))
    assert "setosa" in re.search(r'id="verdict">(.*?)</p>', body).group(1)
    assert "PCA plane" in body and body.count("<tr>") == 1 + 3


def test_boston_price_and_contributions(client):
    values = form_values(client.get("/t/boston").text)
    assert len(values) == 13
    body = answer(client.post("/t/boston", data=values))
    assert re.search(r'id="verdict">\$[\d,]+ \(engineered ridge\)', body)
    assert body.count('class="bar-row"') == 13


def test_kddcup_pasted_and_uploaded_records(client):
    records = "\n".join(kdd_row(i, lab) for i, lab in enumerate(["normal.", "smurf.", "normal."]))
    body = answer(client.post("/t/kddcup", data={"records": records}))
    assert re.search(r"\d of 3 records flagged as attacks", body)
    assert body.count("<td>line ") == 3 and ("ATTACK" in body or "normal" in body)
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", body).group(1)
    assert "<th>autoencoder</th><th>isolation forest</th><th>ocsvm</th>" in head  # each detector's verdict
    body = answer(client.post("/t/kddcup", data={"records": ""},
                              files={"csv": ("conn.csv", records.encode(), "text/csv")}))
    assert "conn.csv line 3" in body


def test_electricity_day_of_the_test_period(client):
    page = client.get("/t/electricity").text
    days = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', page)
    assert days and days[0] >= "2010-02-28"  # the fixture's test period
    body = answer(client.post("/t/electricity", data={"day": days[1]}))
    assert "forecast MSE" in body and body.count("<tr>") == 1 + 24
    assert "same hour yesterday" in body


def test_gan_grid_with_the_judges_verdicts(client):
    body = answer(client.post("/t/gan", data={"digit": "all", "n": "6", "seed": "1"}))  # a conditional run
    assert "the judge is confident" in body and body.count("<tr>") == 1 + 6
    assert "6 generated digits" in body
    body = answer(client.post("/t/gan", data={"digit": "7", "n": "3", "seed": "1"}))
    assert "3 generated digits (asked: 7)" in body


def test_summary_and_run_report_link_the_runs_plots(client, runs):
    r = client.get("/summary")
    assert r.status_code == 200 and r.text.count('class="summary-row"') == len(serve_runs.TASKS)
    assert '<a href="/t/mnist">mnist</a>' in r.text
    plots = re.findall(r'src="(/files/[^"]+)"', r.text)
    assert plots and all(p.endswith((".png", ".gif")) for p in plots)
    for p in plots[:5]:
        got = client.get(p)
        assert got.status_code == 200 and got.content[:4] in (b"\x89PNG", b"GIF8")
    r = client.get("/t/mnist/report")
    assert r.status_code == 200 and 'id="report"' in r.text
    plots = re.findall(r'src="(/files/[^"]+)"', r.text)
    assert len(plots) >= 4 and all(client.get(p).status_code == 200 for p in plots)


# ---------------------------------------------------------------- bad input ---------------

BLANK = png(Image.new("L", (60, 60), 255))


def huge() -> bytes:
    """The header of a PNG of 8000x8000 pixels (64 megapixels): a small upload that would unpack to a
    large image is refused from its header, before any pixel is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", 8000, 8000, 8, 0, 0, 0, 0)  # width, height, 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")

BAD = [
    ("mnist", {"files": {"image": ("notes.txt", b"hello", "text/plain")}}, 415, "must be one of"),
    ("mnist", {"files": {"image": ("broken.png", b"\x89PNG not really", "image/png")}}, 400, "not a readable image"),
    ("mnist", {"files": {"image": ("blank.png", BLANK, "image/png")}}, 400, "no digit found"),
    ("mnist", {"data": {"x": "1"}}, 400, "no image"),
    ("mnist", {"files": {"image": ("big.png", b"\0" * (MAX_FORM_BYTES + 10), "image/png")}}, 413, "limit"),
    ("mnist", {"files": {"image": ("huge.png", huge(), "image/png")}}, 413, "megapixels"),
    ("imdb", {"data": {"review": "   "}}, 400, "empty"),
    ("imdb", {"data": {"review": "... --- ..."}}, 400, "no words"),
    ("imdb", {"data": {"review": "good " * 30_000}}, 413, "limit"),
    ("iris", {"data": {"sepal length (cm)": "wide", "sepal width (cm)": "3", "petal length (cm)": "1",
                       "petal width (cm)": "1"}}, 400, "not a number"),
    ("iris", {"data": {"sepal length (cm)": "5", "sepal width (cm)": "300", "petal length (cm)": "1",
                       "petal width (cm)": "1"}}, 400, "outside the accepted range"),
    ("iris", {"data": {"sepal length (cm)": "nan", "sepal width (cm)": "3", "petal length (cm)": "1",
                       "petal width (cm)": "1"}}, 400, "not a finite number"),
    ("iris", {"data": {"sepal length (cm)": "5"}}, 400, "a number is needed"),
    ("boston", {"data": {"CRIM": "-1"}}, 400, "outside the accepted range"),
    ("kddcup", {"data": {"records": "tcp,http,SF"}}, 400, "3 fields, expected 41"),
    ("kddcup", {"data": {"records": ""}}, 400, "one of the two"),
    ("kddcup", {"data": {"records": ""}, "files": {"csv": ("r.csv", b"\xff\xfe\x00bad", "text/csv")}}, 415, "UTF-8"),
    ("kddcup", {"data": {"records": ""}, "files": {"csv": ("r.exe", b"x", "application/octet-stream")}}, 415,
     "must be one of"),
    ("electricity", {"data": {"day": "2031-01-01"}}, 400, "not one of the choices"),
    ("gan", {"data": {"digit": "all", "n": "0", "seed": "0"}}, 400, "outside the accepted range"),
    ("gan", {"data": {"digit": "all", "n": "2.5", "seed": "0"}}, 400, "not a whole number"),
]


@pytest.mark.parametrize("task,request_,status,message", BAD,
                         ids=[f"{t}-{m.split()[0]}-{i}" for i, (t, _, _, m) in enumerate(BAD)])
def test_bad_input_is_a_4xx_with_the_message_in_the_page(client, task, request_, status, message):
    r = client.post(f"/t/{task}", **request_)
    assert r.status_code == status, r.text[-600:]
    assert message in error(r)
    assert 'id="task-form"' in r.text  # the form is still there to try again


@pytest.mark.parametrize("path,message", [
    ("/t/nothing", "unknown task"),
    ("/t/fashion-mnist", "no complete run of fashion-mnist"),
    ("/t/mnist?run=20990101-000000", "no complete run"),
    ("/t/mnist?run=../../gan", "no complete run"),
    ("/t/mnist/report?run=..", "no complete run"),
    ("/files/../../etc/passwd", ""),  # (the client normalises it to /etc/passwd: no such route)
    ("/files/%2e%2e/%2e%2e/etc/passwd", "no such plot"),
    ("/files/mnist", "no such plot"),
])
def test_unknown_tasks_runs_and_files_are_404(client, path, message):
    r = client.get(path)
    assert r.status_code == 404 and message in error(r)


def test_files_serves_plots_only(client, runs):
    (run,) = [p.name for p in (runs / "mnist").iterdir()]
    assert client.get(f"/files/mnist/{run}/curves.png").status_code == 200
    for name in ("config.json", "model.safetensors", "metrics.json"):
        assert client.get(f"/files/mnist/{run}/{name}").status_code == 404


def test_a_run_that_cannot_be_loaded_is_a_409_not_a_crash(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs / "iris", copy / "iris")
    (run,) = list((copy / "iris").iterdir())
    (run / "model.json").unlink()
    r = TestClient(create_app(copy)).get("/t/iris")
    assert r.status_code == 409 and "cannot be used" in error(r)


def test_nothing_is_written(runs, client):
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*")}
    client.post("/t/mnist", files={"image": ("one.png", digit_one(), "image/png")})
    client.post("/t/imdb", data={"review": "fine"})
    client.get("/summary")
    after = {p: p.stat().st_mtime_ns for p in runs.rglob("*")}
    assert after == before


def test_a_task_registered_from_outside_brings_its_own_page(tmp_path):
    from exoml import tasks
    from fixtures import toy_task
    tasks.register(toy_task.TASK)
    try:
        assert main(["run", "toy", "--quick", "--out", str(tmp_path / "runs")]) == 0
        client = TestClient(create_app(tmp_path / "runs"))
        assert '<a href="/t/toy">toy</a>' in client.get("/").text
        assert answer(client.post("/t/toy", data={"x1": "2", "x2": "2"})).startswith(
            '<p class="verdict" id="verdict">class 1</p>')
        r = client.post("/t/toy", data={"x1": "20", "x2": "2"})
        assert r.status_code == 400 and "outside the accepted range" in error(r)
    finally:
        tasks.unregister(toy_task.NAME)


# ---------------------------------------------------------------- the command -------------

def test_serve_without_the_extra_names_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it now fails
    assert main(["serve", "--runs", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and "[serve]" in err and len(err.splitlines()) == 1


def test_serve_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
