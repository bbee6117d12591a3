"""What a task's page in `exoml serve` is: its form (fields), how it loads a run (once per run) and
how it answers one submitted form (a list of blocks the app renders). A task declares one with
`Task(..., page=Page(...))`; the web machinery (exoml.serve.app) knows no task.

This module holds only plain data and small encoders, so task modules import it without loading
the web framework.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ExomlError


class BadInput(ExomlError):
    """The submitted form cannot be answered: shown in the page with a 4xx status (400 unless given)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A file sent with the form (at most the app's upload limit)."""
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Field:
    """One input of a page's form.

    kind: number (checked by the app against min/max before `answer` sees it, given as a float) |
    text | textarea | select (value one of `choices`) | file (an Upload, or None when no file was sent;
    `accept` lists the file extensions taken) | canvas (a file field the user can also draw into:
    the drawing is sent as a PNG)."""
    name: str
    label: str
    kind: str = "number"
    default: Any = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[tuple[str, str]] = ()   # (value, shown text)
    accept: Sequence[str] = ()                # file extensions, e.g. (".png", ".jpg")
    help: str = ""
    required: bool = True
    integer: bool = False                     # number: whole numbers only


@dataclass(frozen=True)
class Page:
    """A task's page: `about` (one paragraph), `load(run_dir, config) -> state` (called once per run,
    the result cached), `fields(state) -> [Field]` (the form), `answer(state, inputs) -> [block]`
    where inputs maps each field name to its checked value. Bad input raises BadInput (or
    ExomlError, answered 400)."""
    about: str
    load: Callable[[Any, dict], Any]
    fields: Callable[[Any], list[Field]]
    answer: Callable[[Any, dict], list]
    submit: str = "Predict"


# ---------------------------------------------------------------- blocks (what an answer shows) ----

@dataclass(frozen=True)
class Verdict:
    """The answer in one line, large."""
    text: str


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Bars:
    """Horizontal bars: (label, value). Probabilities (signed=False, 0..1, shown as %) or signed
    contributions (signed=True: negative bars red, positive blue, `unit` after the value)."""
    title: str
    items: Sequence[tuple[str, float]]
    signed: bool = False
    unit: str = ""


@dataclass(frozen=True)
class Picture:
    """A PNG (from `png_of_array` or `png_of_figure`); pixelated: scaled up without smoothing."""
    title: str
    png: bytes
    caption: str = ""
    pixelated: bool = False
    width: int | None = None


@dataclass(frozen=True)
class Tokens:
    """Words coloured by a signed weight (blue: pushed the answer up, red: down)."""
    title: str
    items: Sequence[tuple[str, float]]
    caption: str = ""


@dataclass(frozen=True)
class Table:
    title: str
    rows: Sequence[dict]


def png_of_array(arr: np.ndarray) -> bytes:
    """uint8 (H, W) grey or (H, W, 3) RGB -> PNG bytes."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def png_of_figure(fig) -> bytes:
    """A matplotlib figure -> PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def heatmap(weights: np.ndarray, under: np.ndarray | None = None) -> np.ndarray:
    """A (H, W) map of non-negative weights as an RGB uint8 image (white -> red), blended over a
    grey version of `under` when given."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.max() if w.max() > 0 else w
    red = np.stack([np.ones_like(w), 1 - w, 1 - w], -1)
    if under is not None:
        grey = under.astype(np.float64).mean(-1) if under.ndim == 3 else under.astype(np.float64)
        base = np.repeat((0.35 + 0.65 * grey / 255)[..., None], 3, -1)
        red = base * (1 - w[..., None]) + red * w[..., None] * np.array([1.0, 0.15, 0.15])
    return (np.clip(red, 0, 1) * 255).round().astype(np.uint8)


def upscale(arr: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (a 28x28 input stays crisp when shown)."""
    return np.repeat(np.repeat(arr, factor, 0), factor, 1)


# ---------------------------------------------------------------- form helpers for task pages ----

def number_fields(columns: Sequence[str], ranges: dict[str, tuple[float, float]], defaults: dict[str, float],
                  help: str = "") -> list[Field]:
    """One number field per column, with the range the app enforces."""
    return [Field(c, c, "number", default=_short(defaults.get(c, "")), min=ranges[c][0], max=ranges[c][1],
                  help=help) for c in columns]


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@dataclass
class Cache:
    """A small LRU of loaded runs (models are small, but a server left running may be asked for many runs)."""
    size: int = 8
    items: dict = field(default_factory=dict)

    def get(self, key, make):
        if key in self.items:
            self.items[key] = self.items.pop(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.pop(next(iter(self.items)))
        return value
