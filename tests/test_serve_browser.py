"""`exoml serve` in a real headless Chromium (Selenium + chromedriver) on tiny trained runs: the
server is started as a user starts it (`exoml serve`, uvicorn on a free port); the tests draw a digit
on the canvas with pointer events, upload an image, submit a review and read what the page shows,
and take a screenshot of each kind of page, checked to be non-blank."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fixtures import serve_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
pytest.importorskip("uvicorn", reason="exoml serve needs the serve extra")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="chromium and chromedriver are not installed (.ci/run installs them)")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`exoml serve` on the tiny runs: (base URL, the line it printed at start)."""
    runs = serve_runs.build(tmp_path_factory.mktemp("serve"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exoml", "serve", "--runs", str(runs), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path_factory.mktemp("cwd"), env={**os.environ, "MPLBACKEND": "Agg"})
    first = proc.stdout.readline()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"exoml serve exited: {first}{proc.stdout.read()}")
            time.sleep(0.1)
    yield url, first
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--window-size=1000,1400",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def submit_and_wait(browser, selector: str = "#verdict, .error"):
    # The form posts and the browser loads a new document. Waiting for the old <html> element to go
    # stale races with Chromium ("Node with given id does not belong to the document" while the old
    # document is torn down), so the old document is marked by a window property instead: the new
    # document has a fresh window object without it.
    browser.execute_script("window.__exomlOld = true;")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return window.__exomlOld === undefined && document.readyState === 'complete'"))
    return WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, selector)))


def images_loaded(browser) -> bool:
    return browser.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def not_blank(browser, path) -> float:
    browser.save_screenshot(str(path))
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    return pixels.std()


def test_the_server_binds_to_localhost_and_says_so(server):
    url, first = server
    assert "bound to 127.0.0.1" in first and url in first


def test_draw_a_digit_on_the_canvas(server, browser, tmp_path):
    url, _ = server
    browser.get(url + "/t/mnist")
    canvas = browser.find_element(By.ID, "canvas")
    assert canvas.get_attribute("data-drawn") == "0"
    # a '7': a stroke across the top, then down to the bottom left, drawn with the pointer
    ActionChains(browser).move_to_element_with_offset(canvas, -70, -90).click_and_hold() \
        .move_by_offset(70, 0).move_by_offset(70, 0).move_by_offset(-40, 90).move_by_offset(-40, 90) \
        .release().perform()
    assert canvas.get_attribute("data-drawn") == "1"
    ink = browser.execute_script(
        "var c = document.getElementById('canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "var n = 0; for (var i = 0; i < d.length; i += 4) { if (d[i] < 128) n++; } return n;")
    assert ink > 500  # the strokes are on the canvas
    verdict = submit_and_wait(browser)
    assert verdict.get_attribute("id") == "verdict", verdict.text
    assert len(browser.find_elements(By.CSS_SELECTOR, ".bar-row")) == 5
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.picture img")) == 2 and images_loaded(browser)
    assert not_blank(browser, tmp_path / "mnist.png") > 10


def test_upload_an_image(server, browser, tmp_path):
    url, _ = server
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(photo)
    browser.get(url + "/t/cifar10")
    browser.find_element(By.ID, "f-image").send_keys(str(photo))
    verdict = submit_and_wait(browser)
    assert verdict.get_attribute("id") == "verdict"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".bar-row")) == 5 and images_loaded(browser)
    # a scanned digit uploaded to the mnist page
    scan = tmp_path / "scan.png"
    im = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(im).line([(50, 10), (50, 90)], fill=0, width=10)
    im.save(scan)
    browser.get(url + "/t/mnist")
    browser.find_element(By.ID, "f-image").send_keys(str(scan))
    assert submit_and_wait(browser).get_attribute("id") == "verdict"


def test_submit_a_review(server, browser, tmp_path):
    url, _ = server
    browser.get(url + "/t/imdb")
    browser.find_element(By.ID, "f-review").send_keys("A wonderful film, I loved it!")
    verdict = submit_and_wait(browser)
    assert "p(positive) =" in verdict.text
    words = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".tok")]
    assert [w.rstrip("?") for w in words] == ["a", "wonderful", "film", "i", "loved", "it", "!"]
    assert browser.find_element(By.ID, "f-review").get_attribute("value") == "A wonderful film, I loved it!"
    assert not_blank(browser, tmp_path / "imdb.png") > 10


def test_an_empty_review_is_answered_in_the_page(server, browser):
    url, _ = server
    browser.get(url + "/t/imdb")
    shown = submit_and_wait(browser)
    assert "error" in shown.get_attribute("class") and "empty" in shown.text
    assert shown.get_attribute("data-status") == "400"


@pytest.mark.parametrize("task", ["iris", "boston", "kddcup", "electricity", "gan"])
def test_every_other_page_answers_and_is_not_blank(server, browser, task, tmp_path):
    url, _ = server
    browser.get(url + f"/t/{task}")
    if task == "kddcup":
        from fixtures.kddcup import row
        browser.find_element(By.ID, "f-records").send_keys(row(1, "normal.") + "\n" + row(2, "smurf."))
    if task == "iris":
        for field, v in zip(browser.find_elements(By.CSS_SELECTOR, "input[type=number]"), (6.7, 3.0, 5.2, 2.3)):
            field.clear()
            field.send_keys(str(v))
    verdict = submit_and_wait(browser)
    assert verdict.get_attribute("id") == "verdict", verdict.text
    assert images_loaded(browser)
    assert not_blank(browser, tmp_path / f"{task}.png") > 10


@pytest.mark.parametrize("path", ["/", "/summary", "/t/mnist/report"])
def test_summary_and_report_pages_show_their_plots(server, browser, path, tmp_path):
    url, _ = server
    browser.get(url + path)
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")
    assert images_loaded(browser)
    assert not_blank(browser, tmp_path / "page.png") > 10
