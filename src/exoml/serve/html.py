"""The app's HTML: one layout, the form of a task's page, and each answer block. Plain HTML with
escaped values; the only script is static/serve.js (the drawing canvas, the run chooser)."""
from __future__ import annotations

import base64
import hashlib
from html import escape
from pathlib import Path

from .page import Bars, Field, Note, Picture, Table, Tokens, Verdict


def _version() -> str:
    """A hash of the static files, in their URLs: a browser never runs a cached older script."""
    digest = hashlib.sha256()
    for name in ("serve.css", "serve.js"):
        digest.update((Path(__file__).parent / "static" / name).read_bytes())
    return digest.hexdigest()[:10]


VERSION = _version()


def layout(title: str, body: str, nav: str = "") -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)} · exoml</title><link rel=stylesheet href=/static/serve.css?v={VERSION}>"
            f"<script src=/static/serve.js?v={VERSION} defer></script></head><body>"
            f'<header><a href="/" class="home">exoml</a> {nav}</header><main>{body}</main></body></html>\n')


def error_box(message: str, status: int) -> str:
    return f'<p class="error" role="alert" data-status="{status}">{escape(message)}</p>'


# ---------------------------------------------------------------- form ----------------

def form(action: str, fields: list[Field], values: dict, submit: str) -> str:
    multipart = any(f.kind in ("file", "canvas") for f in fields)
    enc = ' enctype="multipart/form-data"' if multipart else ""
    inner = "".join(_field(f, values.get(f.name)) for f in fields)
    return (f'<form method=post action="{escape(action)}"{enc} id="task-form" class="task-form">{inner}'
            f'<p><button type=submit id="submit">{escape(submit)}</button></p></form>')


def _field(f: Field, value) -> str:
    value = f.default if value is None else value
    label = f'<label for="f-{escape(f.name)}">{escape(f.label)}</label>'
    hint = f'<small class="muted">{escape(f.help)}</small>' if f.help else ""
    name = escape(f.name)
    if f.kind == "number":
        rng = "".join(f' {k}="{v:g}"' for k, v in (("min", f.min), ("max", f.max)) if v is not None)
        control = f'<input type=number step=any name="{name}" id="f-{name}" value="{escape(str(value))}"{rng}>'
    elif f.kind == "text":
        control = f'<input type=text name="{name}" id="f-{name}" value="{escape(str(value))}">'
    elif f.kind == "textarea":
        control = f'<textarea name="{name}" id="f-{name}" rows=8>{escape(str(value))}</textarea>'
    elif f.kind == "select":
        opts = "".join(f'<option value="{escape(v)}"{" selected" if str(v) == str(value) else ""}>{escape(t)}</option>'
                       for v, t in f.choices)
        control = f'<select name="{name}" id="f-{name}">{opts}</select>'
    else:  # file, canvas
        accept = escape(",".join(f.accept))
        control = f'<input type=file name="{name}" id="f-{name}" accept="{accept}">'
        if f.kind == "canvas":
            control = (f'<div class="draw"><canvas id="canvas" width=280 height=280 data-for="f-{name}" '
                       f'aria-label="drawing area"></canvas><button type=button id="clear">Clear</button></div>'
                       f'<p class="muted">or upload a file: {control}</p>')
    return f'<div class="field field-{f.kind}">{label}{control}{hint}</div>'


# ---------------------------------------------------------------- answer blocks -------

def blocks(items: list) -> str:
    return '<section id="answer">' + "".join(block(b) for b in items) + "</section>"


def block(b) -> str:
    if isinstance(b, Verdict):
        return f'<p class="verdict" id="verdict">{escape(b.text)}</p>'
    if isinstance(b, Note):
        return f'<p class="note">{escape(b.text)}</p>'
    if isinstance(b, Bars):
        return _bars(b)
    if isinstance(b, Picture):
        src = "data:image/png;base64," + base64.b64encode(b.png).decode()
        style = ' class="pixelated"' if b.pixelated else ""
        width = f' width="{b.width}"' if b.width else ""
        cap = f"<figcaption>{escape(b.caption)}</figcaption>" if b.caption else ""
        return (f'<figure class="picture"><h3>{escape(b.title)}</h3><img src="{src}" alt="{escape(b.title)}"'
                f'{style}{width}>{cap}</figure>')
    if isinstance(b, Tokens):
        top = max((abs(w) for _, w in b.items), default=0) or 1.0
        spans = "".join(
            f'<span class="tok" title="{w:+.4f}" data-w="{w:.4f}" style="background:'
            f'{"rgba(31,119,180," if w > 0 else "rgba(214,39,40,"}{abs(w) / top * 0.85:.2f})">{escape(t)}</span> '
            for t, w in b.items)
        cap = f'<p class="muted">{escape(b.caption)}</p>' if b.caption else ""
        return f'<div class="tokens"><h3>{escape(b.title)}</h3><p>{spans}</p>{cap}</div>'
    if isinstance(b, Table):
        if not b.rows:
            return ""
        cols = list(b.rows[0])
        head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>"
                       for r in b.rows)
        return (f'<div class="table"><h3>{escape(b.title)}</h3><div class="scroll"><table><thead><tr>{head}'
                f"</tr></thead><tbody>{body}</tbody></table></div></div>")
    raise TypeError(f"unknown answer block {type(b).__name__}")


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def _bars(b: Bars) -> str:
    top = max((abs(v) for _, v in b.items), default=0) or 1.0
    rows = []
    for label, v in b.items:
        if b.signed:
            width = abs(v) / top * 50
            left = 50 if v >= 0 else 50 - width
            shown = f"{v:+.3g}{b.unit}"
            cls = "pos" if v >= 0 else "neg"
        else:
            width, left, shown, cls = max(0.0, min(1.0, v)) * 100, 0, f"{v:.1%}", "prob"
        rows.append(f'<div class="bar-row"><span class="bar-label">{escape(label)}</span>'
                    f'<span class="bar-track"><span class="bar {cls}" style="left:{left:.1f}%;width:{width:.1f}%">'
                    f'</span></span><span class="bar-value">{escape(shown)}</span></div>')
    return f'<div class="bars"><h3>{escape(b.title)}</h3>{"".join(rows)}</div>'
