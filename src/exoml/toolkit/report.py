"""report.md for a run: a few markdown helpers, no templating engine.

    report = render(f"MNIST CNN", intro, cfg, metrics, [
        ("Data", f"60,000 train ...\n\n{img('samples.png')}"),
        ("Evaluation", md_table(per_class_rows)),
    ])
"""
from __future__ import annotations

import dataclasses
from datetime import datetime


def fmt(v, floatfmt: str = ".4g") -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return format(v, floatfmt)
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} values]"
    return str(v)


def md_table(rows, floatfmt: str = ".4g") -> str:
    """A markdown table from a list of dicts (one row each) or from a dict (two columns)."""
    if isinstance(rows, dict):
        rows = [{"name": k, "value": v} for k, v in rows.items()]
    rows = list(rows)
    if not rows:
        return "_(none)_"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c, ""), floatfmt).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(out)


def img(name: str, caption: str = "") -> str:
    return f"![{caption or name}]({name})"


def render(title: str, intro: str, cfg, metrics: dict, sections: list[tuple[str, str]]) -> str:
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    headline = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    parts = [f"# {title}", "", f"_{datetime.now():%Y-%m-%d %H:%M}_", "", intro.strip(), "",
             "## Results (official test split)", "", md_table(headline), ""]
    for heading, body in sections:
        parts += [f"## {heading}", "", body.strip(), ""]
    parts += ["## Configuration", "", md_table(config), ""]
    return "\n".join(parts)
