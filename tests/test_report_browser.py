"""`exoml report` builds one HTML page; a real headless Chromium renders it and we check what it shows."""
from __future__ import annotations

import re
import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from exoml.toolkit import runs
from exoml.cli import main
from exoml.toolkit.report import img, md_table, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _fake_run(out, task: str, value: float, with_image: bool = True):
    """A complete run folder shaped like a task's, with one real PNG plot."""
    with runs.new_run(task, {"seed": 0, "profile": "quick"}, out) as run:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(np.arange(10), np.arange(10) ** 0.5, color="tab:red")
        run.save_figure(fig, "curves.png")
        metrics = {"accuracy": value, "device": "cpu"}
        body = f"{img('curves.png', 'training curves')}\n\n{md_table([{'class': 'a', 'f1': 0.5}])}"
        if not with_image:
            body = body.replace("curves.png", "missing.png")
        runs.finish(run, metrics, render(f"{task} demo", "Intro text.", {"seed": 0}, metrics, [("Evaluation", body)]))
    return run.path


def _chromium(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)


def test_report_page_structure(tmp_path):
    out = tmp_path / "runs"
    _fake_run(out, "mnist", 0.99)
    _fake_run(out, "iris", 0.89)
    assert main(["report", "--runs", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert page.count('class="summary-row"') == 2
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?://', page)  # nothing from the network
    assert (out / "report" / "img" / "mnist" / "curves.png").is_file()


def test_report_summary_has_the_readme_columns(tmp_path):
    out = tmp_path / "runs"
    _fake_run(out, "mnist", 0.99)
    assert main(["report", "--runs", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    head = re.search(r'<table id="summary"><thead>(.*?)</thead>', page).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["task", "model", "metric", "result (seed, profile)",
                                                   "published reference", "hardware", "time (s)", "command"]
    assert "<code>exoml run mnist --profile quick --seed 0</code>" in page


def test_report_without_runs_is_a_clear_error(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path / "nothing")]) == 2
    assert "exoml run all --quick" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_real_browser(tmp_path):
    out = tmp_path / "runs"
    for task, v in (("mnist", 0.99), ("iris", 0.89), ("boston", 0.67)):
        _fake_run(out, task, v)
    page = tmp_path / "runs" / "report" / "index.html"
    assert main(["report", "--runs", str(out)]) == 0
    profile = tmp_path / "profile"
    dom = _chromium(f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()).stdout
    assert re.search(r'data-images="3"', dom), dom[:500]
    assert 'data-broken-images="0"' in dom
    assert dom.count('class="summary-row"') == 3
    shot = tmp_path / "shot.png"
    _chromium(f"--user-data-dir={profile}", "--window-size=412,1400", f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[1] == 412 and pixels.std() > 10  # a phone-width page with visible content


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_browser_sees_a_broken_image(tmp_path):
    out = tmp_path / "runs"
    _fake_run(out, "mnist", 0.99, with_image=False)
    assert main(["report", "--runs", str(out)]) == 0
    page = out / "report" / "index.html"
    dom = _chromium(f"--user-data-dir={tmp_path / 'p'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()).stdout
    assert 'data-broken-images="1"' in dom and "image missing" in dom
