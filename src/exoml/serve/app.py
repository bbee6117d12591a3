"""`exoml serve`: one page per task with a complete run, on FastAPI + uvicorn.

    GET  /                      the tasks, with and without a complete run
    GET  /summary               the report's summary of every task (exoml.htmlreport)
    GET  /t/TASK?run=NAME       the task's page (its latest complete run unless NAME is given)
    POST /t/TASK?run=NAME       the page with the answer to the submitted form
    GET  /t/TASK/report?run=    the run's report.md with its plots
    GET  /files/TASK/RUN/PLOT   a plot of a run (PNG/GIF/JPEG/SVG inside the runs folder only)

Nothing is written: runs are read, answers are rendered in memory. A run is named in a URL only by
its folder name, looked up among the task's complete runs; a file path must resolve inside the
runs folder. Bad input is answered by the page with a message and a 4xx status: 400 (a value that
does not fit), 404 (unknown task, run or file), 413 (a form over MAX_FORM_BYTES or a text over
MAX_TEXT_CHARS), 415 (a file type the field does not take), 409 (a run whose files cannot be used).
"""
from __future__ import annotations

import math
import threading
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from .. import tasks
from ..errors import ExomlError
from ..toolkit.runs import is_complete
from . import html
from .page import BadInput, Cache, Field, Upload

MAX_FORM_BYTES = 5 * 1024 * 1024   # one submitted form: an image, a CSV of records, a review
MAX_TEXT_CHARS = 100_000           # a text field (a review is a few thousand characters)
FILE_TYPES = {".png", ".gif", ".jpg", ".jpeg", ".svg"}  # what /files serves: the runs' plots
STATIC = Path(__file__).parent / "static"


def complete_runs(runs_dir: Path, task: str) -> list[str]:
    """Names of the task's complete runs, newest first."""
    base = runs_dir / task
    if not base.is_dir():
        return []
    return sorted((p.name for p in base.iterdir() if p.is_dir() and is_complete(p)), reverse=True)


def headline(task, run_dir: Path) -> str:
    """'; test accuracy 0.9912 (quick profile)' from the run's metrics.json and config.json ('' if unreadable)."""
    import json
    try:
        value = json.loads((run_dir / "metrics.json").read_text())[task.headline.key]
        profile = json.loads((run_dir / "config.json").read_text())["config"].get("profile", "")
        return f"; this run: {escape(task.headline.label)} {float(value):.4g}" + (
            f" ({escape(str(profile))} profile)" if profile else "")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def served_tasks(runs_dir: Path) -> list[tuple]:
    """(task, its complete runs) for every task that has a page."""
    return [(t, complete_runs(runs_dir, t.name)) for t in tasks.all_tasks() if t.page is not None]


def create_app(runs_dir: str | Path = "runs") -> FastAPI:
    runs_dir = Path(runs_dir).resolve()
    app = FastAPI(title="exoml", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    cache, lock = Cache(), threading.Lock()

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        nav = '<a href="/summary">summary</a>' + "".join(
            f'<a href="/t/{escape(t.name)}">{escape(t.name)}</a>' for t, runs in served_tasks(runs_dir) if runs)
        return HTMLResponse(html.layout(title, body, nav), status_code=status)

    def failure(status: int, message: str) -> HTMLResponse:
        return page("error", f"<h1>{status}</h1>{html.error_box(message, status)}"
                             f'<p><a href="/">all tasks</a></p>', status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc):
        return failure(exc.status_code, str(exc.detail))

    def resolve(task_name: str, run: str | None):
        """(task, run folder, all its complete run names) or a 404."""
        if task_name not in tasks.names():
            raise StarletteHTTPException(404, f"unknown task {task_name!r}")
        task = tasks.get(task_name)
        if task.page is None:
            raise StarletteHTTPException(404, f"task {task_name!r} has no page")
        names = complete_runs(runs_dir, task.name)
        if not names:
            raise StarletteHTTPException(404, f"no complete run of {task.name} under {runs_dir}: train one with "
                                              f"`exoml run {task.name}`")
        if run is None or run == "":
            run = names[0]
        if run not in names:  # only a listed folder name: nothing from the URL reaches a path
            raise StarletteHTTPException(404, f"no complete run {run!r} of {task.name}")
        return task, runs_dir / task.name / run, names

    def loaded(task, run_dir: Path):
        def make():
            import json
            try:
                info = json.loads((run_dir / "config.json").read_text())
            except (OSError, ValueError):
                raise BadInput(f"{run_dir.name}: no readable config.json", 409) from None
            try:
                return task.page.load(run_dir, info)
            except ExomlError as e:
                raise BadInput(f"run {run_dir.name} cannot be used: {e}", 409) from None
        with lock:
            return cache.get((task.name, str(run_dir)), make)

    def head(task, run_dir: Path, names: list[str]) -> str:
        opts = "".join(f'<option value="{escape(n)}"{" selected" if n == run_dir.name else ""}>{escape(n)}'
                       f'{" (latest)" if i == 0 else ""}</option>' for i, n in enumerate(names))
        return (f"<h1>{escape(task.exercise)}</h1><p class=muted>{escape(task.model)}{headline(task, run_dir)}</p>"
                f"<p>{escape(task.page.about)}</p>"
                f'<form method=get action="/t/{escape(task.name)}" class="runs"><label>run '
                f'<select name=run id="run-chooser">{opts}</select></label> <noscript><button>show</button>'
                f'</noscript> <a href="/t/{escape(task.name)}/report?run={escape(run_dir.name)}" id="report-link">'
                f"the run's report and plots</a></form>")

    def task_page(task, run_dir, names, fields, values, answer: str = "", status: int = 200) -> HTMLResponse:
        action = f"/t/{task.name}?run={run_dir.name}"
        body = head(task, run_dir, names) + html.form(action, fields, values, task.page.submit) + answer
        return page(task.name, body, status)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def index():
        have, missing = [], []
        for t, runs in served_tasks(runs_dir):
            if runs:
                have.append(f'<li><a href="/t/{escape(t.name)}">{escape(t.name)}</a>: {escape(t.exercise)} '
                            f'<span class=muted>({len(runs)} complete run{"s" * (len(runs) != 1)}, latest '
                            f"{escape(runs[0])})</span></li>")
            else:
                missing.append(f"<li>{escape(t.name)} <span class=muted>(no complete run: "
                               f"<code>exoml run {escape(t.name)}</code>)</span></li>")
        body = (f"<h1>exoml: use the trained models</h1><p class=muted>runs folder {escape(str(runs_dir))}</p>"
                f'<p><a href="/summary">The summary of all tasks</a> (the report of every latest run).</p>'
                f'<h2>Tasks</h2><ul class="tasks" id="tasks">{"".join(have)}</ul>'
                + (f"<h2>Without a run</h2><ul>{''.join(missing)}</ul>" if missing else ""))
        return page("exoml", body)

    def link_for(_task, folder: Path, _rel):
        def link(src: str, source: Path) -> str:
            return "/files/" + source.relative_to(runs_dir).as_posix()
        return link

    @app.get("/summary", response_class=HTMLResponse)
    def summary():
        from ..htmlreport import report_page
        if not any(runs for _, runs in served_tasks(runs_dir)):
            raise StarletteHTTPException(404, f"no complete runs under {runs_dir}: run `exoml run all --quick`")
        text = report_page(runs_dir, link_for, task_href=lambda name: f"/t/{name}")
        return HTMLResponse(text)

    @app.get("/t/{task_name}/report", response_class=HTMLResponse)
    def run_report(task_name: str, run: str | None = None):
        from ..htmlreport import render_markdown
        task, run_dir, names = resolve(task_name, run)
        try:
            body = render_markdown((run_dir / "report.md").read_text(), run_dir.resolve(),
                                   link_for(task.name, run_dir, ""))
        except OSError:
            raise StarletteHTTPException(404, f"run {run_dir.name} has no readable report.md") from None
        return page(f"{task.name} report", f'<p><a href="/t/{escape(task.name)}?run={escape(run_dir.name)}">'
                                           f"back to the {escape(task.name)} page</a></p>"
                                           f'<div class="report" id="report">{body}</div>')

    @app.get("/files/{path:path}")
    def files(path: str):
        target = (runs_dir / path).resolve()
        if runs_dir not in target.parents or not target.is_file() or target.suffix.lower() not in FILE_TYPES:
            raise StarletteHTTPException(404, f"no such plot: {path}")
        return FileResponse(target)

    @app.get("/t/{task_name}", response_class=HTMLResponse)
    def show(task_name: str, run: str | None = None):
        task, run_dir, names = resolve(task_name, run)
        try:
            state = loaded(task, run_dir)
        except BadInput as e:
            return page(task.name, head(task, run_dir, names) + html.error_box(str(e), e.status), e.status)
        return task_page(task, run_dir, names, task.page.fields(state), {})

    @app.post("/t/{task_name}", response_class=HTMLResponse)
    async def answer(task_name: str, request: Request, run: str | None = None):
        task, run_dir, names = resolve(task_name, run)
        try:
            state = await run_in_threadpool(loaded, task, run_dir)
        except BadInput as e:
            return page(task.name, head(task, run_dir, names) + html.error_box(str(e), e.status), e.status)
        fields = task.page.fields(state)
        values: dict = {}
        try:
            form = await read_form(request)
            values = {f.name: form.get(f.name) for f in fields if f.kind not in ("file", "canvas")}
            inputs = {f.name: await checked(f, form.get(f.name)) for f in fields}
            blocks = await run_in_threadpool(task.page.answer, state, inputs)
        except BadInput as e:
            return task_page(task, run_dir, names, fields, values, html.error_box(str(e), e.status), e.status)
        except ExomlError as e:
            return task_page(task, run_dir, names, fields, values, html.error_box(str(e), 400), 400)
        return task_page(task, run_dir, names, fields, values, html.blocks(blocks))

    return app


async def read_form(request: Request):
    """The form, refused (413) past MAX_FORM_BYTES before it is parsed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise BadInput(f"the form is {int(declared) / 2**20:.1f} MB: the limit is {MAX_FORM_BYTES // 2**20} MB", 413)
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise BadInput(f"the form is over the {MAX_FORM_BYTES // 2**20} MB limit", 413)
        body.append(chunk)
    data = b"".join(body)

    async def receive():
        return {"type": "http.request", "body": data, "more_body": False}
    try:
        return await Request(request.scope, receive).form()
    except MultiPartException as e:
        raise BadInput(f"the form could not be read: {e.message}") from None


async def checked(f: Field, raw):
    """A form value as the page's answer() takes it; BadInput names the field."""
    if f.kind in ("file", "canvas"):
        if raw is None or isinstance(raw, str) or not getattr(raw, "filename", None):
            if isinstance(raw, str) and raw:
                raise BadInput(f"{f.label}: expected a file upload")
            return None
        data = await raw.read()
        if not data:
            return None
        suffix = Path(raw.filename).suffix.lower()
        if f.accept and suffix not in f.accept:
            raise BadInput(f"{raw.filename}: the {f.label.lower()} must be one of {', '.join(f.accept)} "
                           f"(got {suffix or 'no extension'})", 415)
        return Upload(Path(raw.filename).name, raw.content_type or "", data)
    if not isinstance(raw, (str, type(None))):
        raise BadInput(f"{f.label}: expected a value, got a file")
    text = (raw or "").strip()
    if f.kind == "number":
        if not text:
            raise BadInput(f"{f.label}: a number is needed")
        try:
            x = float(text)
        except ValueError:
            raise BadInput(f"{f.label}: {text[:40]!r} is not a number") from None
        if not math.isfinite(x):
            raise BadInput(f"{f.label}: {text[:40]!r} is not a finite number")
        if f.integer and not x.is_integer():
            raise BadInput(f"{f.label}: {text[:40]!r} is not a whole number")
        if (f.min is not None and x < f.min) or (f.max is not None and x > f.max):
            low = "" if f.min is None else f"{f.min:g}"
            high = "" if f.max is None else f"{f.max:g}"
            raise BadInput(f"{f.label}: {x:g} is outside the accepted range [{low}, {high}]")
        return x
    if f.kind == "select":
        if text not in {str(v) for v, _ in f.choices}:
            raise BadInput(f"{f.label}: {text[:40]!r} is not one of the choices")
        return text
    if len(raw or "") > MAX_TEXT_CHARS:
        raise BadInput(f"{f.label}: {len(raw):,} characters, over the {MAX_TEXT_CHARS:,} limit", 413)
    if f.required and not text:
        raise BadInput(f"{f.label}: empty; type or paste some text")
    return raw or ""


def serve(runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn
    app = create_app(runs_dir)
    where = "local only" if host in ("127.0.0.1", "localhost", "::1") else "reachable from other machines"
    print(f"exoml serve: http://{host}:{port}/ ({where}: bound to {host}), runs from {Path(runs_dir).resolve()}; "
          "Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
