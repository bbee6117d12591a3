"""`exoml report`: one static HTML page over the latest complete run of every task.

The page (runs/report/index.html) and copies of the runs' images (runs/report/img/...) form a
self-contained folder: no CDN, no script from elsewhere, readable on a phone (a single column,
tables scroll sideways). Each task's section is its own report.md rendered to HTML.
"""
from __future__ import annotations

import html
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

from .errors import ExomlError
from .toolkit.runs import atomic_write_text, latest_run
from .tasks import TASKS

# The published figure each exercise is usually compared with, and where it comes from.
REFERENCES: dict[str, tuple[str, str]] = {
    "cifar10": ("94.0% test accuracy in 3.3 s on one A100 (airbench94)", "Jordan, 94% on CIFAR-10 in 3.29 seconds, arXiv:2404.00498"),
    "boston": ("OLS test R² 0.6688 (80/20 split, random_state=42)", "the common scikit-learn tutorial split"),
    "imdb": ("84.3% test accuracy (Keras bidirectional LSTM example); 88.9% (Maas et al. 2011)", "keras.io examples; ACL 2011"),
    "iris": ("K-means k=3 ARI 0.730", "scikit-learn K-means on the raw Iris features"),
    "kddcup": ("precision 0.930, recall 0.944, F1 0.937 (DAGMM)", "Zong et al., ICLR 2018"),
    "gan": ("DCGAN digits (no standard FID on MNIST)", "Radford et al., ICLR 2016"),
    "electricity": ("weekly RMSE: naive 465 kW, LSTM 368-400 kW", "Brownlee, multi-step LSTM forecasting of household power"),
    "mnist": ("99.25% test accuracy (Keras mnist_cnn example)", "keras.io examples"),
    "fashion-mnist": ("87.7% (MLPClassifier, 100 hidden units)", "Zalando Fashion-MNIST benchmark"),
    "cifar100": ("81.2% test accuracy (WRN-28-10)", "Zagoruyko & Komodakis, BMVC 2016"),
}

# The metrics.json key each task's summary row shows; other tasks fall back to HEADLINE_KEYS.
HEADLINE = {"boston": "engineered_test_r2", "iris": "ari", "kddcup": "A_f1", "gan": "fid",
            "electricity": "H_test_mse_kw2"}
HEADLINE_KEYS = ("test_accuracy", "accuracy", "r2", "test_r2", "ari", "f1", "fid", "mse", "test_mse", "rmse")

CSS = """
body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafafa}
main{max-width:980px;margin:0 auto;padding:12px 16px 48px;background:#fff}
h1{font-size:1.7em;margin:.4em 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}
img{max-width:100%;height:auto;display:block;margin:.6em 0;border:1px solid #eee}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;background:#f3f4f6}
pre{padding:8px;overflow-x:auto}
.muted{color:#59636e;font-size:.9em}
nav a{margin-right:.8em;white-space:nowrap}
"""


# After load, count images that failed and flag each one visibly (also read by the browser test).
CHECK_IMAGES = """
window.addEventListener('load', function () {
  var imgs = document.images, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) {
      bad++; imgs[i].insertAdjacentHTML('afterend', '<p class="broken">image missing: ' + imgs[i].getAttribute('src') + '</p>');
    }
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken-images', bad);
});
"""


def headline(metrics: dict, task: str | None = None) -> tuple[str, object]:
    for key in (HEADLINE.get(task), *HEADLINE_KEYS):
        if isinstance(metrics.get(key), (int, float)):
            return key, metrics[key]
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "elapsed_s":
            return key, value
    return "-", None


def _render_markdown(text: str, run: Path, out_dir: Path, rel: str) -> str:
    """report.md -> HTML, its images copied under out_dir/rel/ and the links rewritten."""
    import markdown
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])

    def copy(match):
        src = html.unescape(match.group(1))
        if re.match(r"^[a-z]+:", src) or src.startswith("/"):
            return match.group(0)
        source = (run / src).resolve()
        if not source.is_file() or run.resolve() not in source.parents:
            return match.group(0)  # left as is: the browser test reports it as broken
        dest = out_dir / rel / src.replace("/", "__")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return f'src="{rel}/{html.escape(dest.name)}"'

    body = re.sub(r'src="([^"]+)"', copy, body)
    body = re.sub(r"<table>", '<div class="scroll"><table>', body).replace("</table>", "</table></div>")
    return re.sub(r"<h1>.*?</h1>", "", body, count=1, flags=re.S)  # the section has its own title


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _summary_row(task: str, run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    info = json.loads((run / "config.json").read_text())
    cfg, env = info.get("config", {}), info.get("environment", {})
    key, value = headline(metrics, task)
    ref, source = REFERENCES.get(task, ("", ""))
    return {"task": task, "metric": key, "value": value, "seed": cfg.get("seed"),
            "profile": "quick" if cfg.get("quick") else "full", "time_s": metrics.get("elapsed_s"),
            "hardware": metrics.get("device") or env.get("processor", ""), "run": run.name,
            "reference": ref, "source": source}


def build_report(runs_dir: str | Path = "runs", out: str | Path | None = None) -> Path:
    runs_dir = Path(runs_dir)
    out_dir = Path(out) if out else runs_dir / "report"
    found = {t: latest_run(t, runs_dir) for t in TASKS}
    found = {t: r for t, r in found.items() if r is not None}
    if not found:
        raise ExomlError(f"no complete runs under {runs_dir}: run `exoml run all --quick` first")
    img_root = out_dir / "img"
    shutil.rmtree(img_root, ignore_errors=True)
    rows, sections = [], []
    for task, run in found.items():
        row = _summary_row(task, run)
        rows.append(row)
        body = _render_markdown((run / "report.md").read_text(), run, out_dir, f"img/{task}")
        for study in sorted((runs_dir / task).glob("tune-*/report.md")):  # tuning studies, if any
            body += _render_markdown(study.read_text().replace("# Tuning", "### Tuning", 1), study.parent,
                                     out_dir, f"img/{task}/{study.parent.name}")
        sections.append(f'<section id="{task}"><h2>{html.escape(TASKS[task].exercise)} '
                        f'<span class="muted">({task})</span></h2>'
                        f'<p class="muted">run {html.escape(str(run))}</p>{body}</section>')
    head = ("<tr><th>task</th><th>metric</th><th>value</th><th>seed</th><th>profile</th><th>time (s)</th>"
            "<th>hardware</th><th>published reference</th></tr>")
    body_rows = "".join(
        f'<tr class="summary-row"><td><a href="#{r["task"]}">{r["task"]}</a></td><td>{html.escape(str(r["metric"]))}</td>'
        f'<td>{_fmt(r["value"])}</td><td>{r["seed"]}</td><td>{r["profile"]}</td>'
        f'<td>{r["time_s"]}</td><td>{html.escape(str(r["hardware"]))}</td>'
        f'<td>{html.escape(r["reference"])}<br><span class="muted">{html.escape(r["source"])}</span></td></tr>'
        for r in rows)
    nav = " ".join(f'<a href="#{t}">{t}</a>' for t in found)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>exoml report</title><style>{CSS}</style></head><body><main>"
            f"<h1>exoml: ten classic ML exercises</h1>"
            f'<p class="muted">Generated {datetime.now():%Y-%m-%d %H:%M} from {html.escape(str(runs_dir))}. '
            f"Metrics are on each dataset's official test split; runs marked <em>quick</em> used the "
            f"seconds-long demo profile and are not representative of the full recipes.</p>"
            f"<nav>{nav}</nav><h2>Summary</h2>"
            f'<div class="scroll"><table id="summary"><thead>{head}</thead><tbody>{body_rows}</tbody></table></div>'
            f"{''.join(sections)}</main><script>{CHECK_IMAGES}</script></body></html>\n")
    atomic_write_text(out_dir / "index.html", page)
    return out_dir / "index.html"
