"""The README's screenshot of `exoml serve`: a digit drawn on the mnist page of a trained run.

    python tools/serve_screenshot.py --runs RUNS [--out docs/serve-mnist.png]

Starts `exoml serve` on RUNS (a free port, 127.0.0.1), draws a '3' on the canvas with pointer events
in headless Chromium (Selenium + chromedriver), submits it and saves the page as a PNG."""
from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="runs folder with a complete mnist run")
    ap.add_argument("--out", default="docs/serve-mnist.png")
    ap.add_argument("--width", type=int, default=900, help="width of the saved PNG in pixels")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "exoml", "serve", "--runs", args.runs, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    profile = tempfile.mkdtemp(prefix="exoml-shot-")
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        options = Options()
        options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--window-size=1000,1330", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(url + "/t/mnist")
            canvas = driver.find_element(By.ID, "canvas")
            # a '3': two bows on the right, drawn as one stroke
            points = [(-60, -90), (0, -105), (55, -80), (50, -30), (-10, -5), (55, 20), (60, 75), (0, 105), (-65, 85)]
            chain = ActionChains(driver).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
            for (x0, y0), (x1, y1) in zip(points, points[1:]):
                chain = chain.move_by_offset(x1 - x0, y1 - y0)
            chain.release().perform()
            old = driver.find_element(By.TAG_NAME, "html")
            driver.find_element(By.ID, "submit").click()
            WebDriverWait(driver, 60).until(EC.staleness_of(old))
            WebDriverWait(driver, 60).until(EC.presence_of_element_located((By.ID, "verdict")))
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)
    shot = shot.resize((args.width, round(shot.height * args.width / shot.width)), Image.LANCZOS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shot.quantize(colors=128).save(out, optimize=True)  # a small PNG for the repository
    print(f"screenshot: {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
