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
from . import tasks

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


def headline(metrics: dict, task) -> tuple[str, object]:
    """(key, value) of the task's declared headline metric in a run's metrics.json."""
    return task.headline.key, metrics.get(task.headline.key)


class CannotWrite(Exception):
    """The report's own folder cannot be written (read-only, full disk): the whole report fails,
    unlike a damaged run, which is skipped."""


def copier(out_dir: Path, rel: str):
    """link(src, source) for render_markdown: copies the image under out_dir/rel/ (the static report)."""
    def link(src: str, source: Path) -> str:
        dest = out_dir / rel / src.replace("/", "__")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
        except OSError as e:
            with open(source, "rb"):  # the run's own file unreadable: raises, and that run is skipped
                pass
            raise CannotWrite(f"under {out_dir}: {dest}: {e.strerror or e}") from None
        return f"{rel}/{dest.name}"
    return link


def render_markdown(text: str, run: Path, link) -> str:
    """A run's report.md -> HTML; each image inside the run folder gets the address link(src, file)
    returns (a copy for the static report, a URL for `exoml serve`)."""
    import markdown
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])

    def relink(match):
        src = html.unescape(match.group(1))
        if re.match(r"^[a-z]+:", src) or src.startswith("/"):
            return match.group(0)
        source = (run / src).resolve()
        if not source.is_file() or run.resolve() not in source.parents:
            return match.group(0)  # left as is: the browser test reports it as broken
        return f'src="{html.escape(link(src, source))}"'

    body = re.sub(r'src="([^"]+)"', relink, body)
    body = re.sub(r"<table>", '<div class="scroll"><table>', body).replace("</table>", "</table></div>")
    return re.sub(r"<h1>.*?</h1>", "", body, count=1, flags=re.S)  # the section has its own title


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _command(task, cfg: dict, profile: str) -> str:
    """An `exoml run` command that repeats the run: its profile and seed, and every setting that
    differs from that profile's value."""
    from .toolkit.config import to_dict
    try:
        base = to_dict(task.settings(profile))
    except Exception:  # a profile the task no longer has: show what was recorded
        base = {}
    skip = {"out", "profile", "seed", "quick"}
    flags = [f"--profile {profile}", f"--seed {cfg.get('seed', 0)}"]
    for key, value in cfg.items():
        if key in skip or key not in base or base[key] == value:
            continue
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value).lower() if isinstance(
            value, bool) else str(value)
        flags.append(f"--{key.replace('_', '-')} {shown}")
    return f"exoml run {task.name} " + " ".join(flags)


def _summary_row(task, run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    info = json.loads((run / "config.json").read_text())
    if not isinstance(metrics, dict) or not isinstance(info, dict):
        raise ValueError("metrics.json or config.json is not a JSON object")
    cfg, env = info.get("config", {}), info.get("environment", {})
    key, value = headline(metrics, task)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ValueError(f"its headline {key!r} is {value!r}, not a number")
    profile = cfg.get("profile") or ("quick" if cfg.get("quick") else task.default_profile)  # a config.json with a `quick` flag
    return {"task": task.name, "model": task.model, "metric": task.headline.label, "value": value,
            "seed": cfg.get("seed"), "profile": profile, "time_s": metrics.get("elapsed_s"),
            "hardware": metrics.get("device") or env.get("processor", ""), "run": run.name,
            "command": _command(task, cfg, profile), "reference": task.reference.text, "source": task.reference.source}


def build_report(runs_dir: str | Path = "runs", out: str | Path | None = None) -> Path:
    runs_dir = Path(runs_dir)
    out_dir = Path(out) if out else runs_dir / "report"
    if not any(latest_run(t.name, runs_dir) for t in tasks.all_tasks()):
        raise ExomlError(f"no complete runs under {runs_dir}: run `exoml run all --quick` first")
    shutil.rmtree(out_dir / "img", ignore_errors=True)
    try:
        (out_dir / "img").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExomlError(f"cannot write the report under {out_dir}: {e.strerror or e}") from None
    page = report_page(runs_dir, lambda task, folder, rel: copier(out_dir, rel))
    atomic_write_text(out_dir / "index.html", page)
    return out_dir / "index.html"


def report_page(runs_dir: Path, link_for, task_href=None) -> str:
    """The report's HTML over the latest complete run of every task. link_for(task, folder, rel)
    gives the image linker of one run or study folder (see render_markdown; rel: where the static
    report copies its images); task_href(task), when given, links each summary row to that address
    instead of the section below."""
    runs_dir = Path(runs_dir)
    known = {t.name: t for t in tasks.all_tasks()}
    found = {name: latest_run(name, runs_dir) for name in known}
    found = {name: r for name, r in found.items() if r is not None}
    if not found:
        raise ExomlError(f"no complete runs under {runs_dir}: run `exoml run all --quick` first")
    rows, sections, skipped = [], [], []
    for task, run in found.items():
        try:  # one damaged run (a truncated metrics.json, a missing report) must not break the page
            row = _summary_row(known[task], run)
            body = render_markdown((run / "report.md").read_text(), run, link_for(task, run, f"img/{task}"))
        except CannotWrite as e:
            raise ExomlError(f"cannot write the report {e}") from None
        except (OSError, ValueError, TypeError, AttributeError) as e:
            skipped.append((task, run, str(e).splitlines()[0] if str(e) else type(e).__name__))
            print(f"report: skipped {run}: {skipped[-1][2]}")
            continue
        rows.append(row)
        for study in sorted((runs_dir / task).glob("tune-*/report.md")):  # tuning studies, if any
            rel = f"img/{task}/{study.parent.name}"
            body += render_markdown(study.read_text().replace("# Tuning", "### Tuning", 1), study.parent,
                                    link_for(task, study.parent, rel))
        sections.append(f'<section id="{task}"><h2>{html.escape(known[task].exercise)} '
                        f'<span class="muted">({task})</span></h2>'
                        f'<p class="muted">run {html.escape(str(run))}</p>{body}</section>')
    if not rows:
        raise ExomlError(f"no readable complete run under {runs_dir} ({len(skipped)} skipped: damaged files)")
    # The same columns as the README's results table, for the runs found here.
    head = ("<tr><th>task</th><th>model</th><th>metric</th><th>result (seed, profile)</th>"
            "<th>published reference</th><th>hardware</th><th>time (s)</th><th>command</th></tr>")
    body_rows = "".join(
        f'<tr class="summary-row"><td><a href="{html.escape(task_href(r["task"]) if task_href else "#" + r["task"])}">'
        f'{r["task"]}</a></td><td>{html.escape(r["model"])}</td>'
        f'<td>{html.escape(str(r["metric"]))}</td>'
        f'<td>{_fmt(r["value"])} <span class="muted">(seed {r["seed"]}, {r["profile"]})</span></td>'
        f'<td>{html.escape(r["reference"])}<br><span class="muted">{html.escape(r["source"])}</span></td>'
        f'<td>{html.escape(str(r["hardware"]))}</td><td>{r["time_s"]}</td>'
        f'<td><code>{html.escape(r["command"])}</code></td></tr>'
        for r in rows)
    if skipped:
        body_rows += "".join(f'<tr class="skipped-row"><td>{t}</td><td colspan="7">run {html.escape(run.name)} '
                             f"skipped: {html.escape(why)}</td></tr>" for t, run, why in skipped)
    nav = " ".join(f'<a href="#{r["task"]}">{r["task"]}</a>' for r in rows)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>exoml report</title><style>{CSS}</style></head><body><main>"
            f"<h1>exoml: ten classic ML exercises</h1>"
            f'<p class="muted">Generated {datetime.now():%Y-%m-%d %H:%M} from {html.escape(str(runs_dir))}. '
            f"Metrics are on each dataset's official test split; runs of the <em>quick</em> profile used the "
            f"seconds-long demo profile and are not representative of the full recipes.</p>"
            f"<nav>{nav}</nav><h2>Summary</h2>"
            f'<div class="scroll"><table id="summary"><thead>{head}</thead><tbody>{body_rows}</tbody></table></div>'
            f"{''.join(sections)}</main><script>{CHECK_IMAGES}</script></body></html>\n")
    return page
