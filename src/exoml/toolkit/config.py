"""Task settings as one dataclass per task, and CLI flags generated from it.

A task writes

    @dataclass
    class Config(Common):
        epochs: int = 10          # passes over the training set
        optimizer: str = "adam"   # adam | adamw | sgd | rmsprop

and `exoml run TASK --help` lists `--epochs`, `--optimizer`, ... with their defaults. Help text
comes from `field(metadata={"help": ...})` when given, else from the field's trailing comment.
The quick profile (`--quick`) is a dict of overrides the task declares; flags given on
the command line win over it, and a `--config FILE.json` (e.g. a tuned best_config.json)
sits between the defaults and the flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExomlError


class ConfigError(ExomlError, ValueError):
    """A setting that cannot be used (unknown key, wrong type)."""


@dataclass
class Common:
    """Settings every task has."""
    seed: int = field(default=0, metadata={"help": "random seed (python, numpy, torch)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps"})
    out: str = field(default="runs", metadata={"help": "folder that holds runs/<task>/<timestamp>/"})
    quick: bool = field(default=False, metadata={"help": "a seconds-long profile for smoke runs and CPU demos"})
    dry_run: bool = field(default=False, metadata={"help": "one batch of training and evaluation, to check the wiring"})


def _parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _field_type(cls, f: dataclasses.Field):
    hints = typing.get_type_hints(cls)
    tp = hints[f.name]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0]
        origin = typing.get_origin(tp)
    return tp, origin


# Settings chosen by name across tasks: a typo is caught by the parser, before any training.
NAMED_CHOICES = {"optimizer": ["adam", "adamw", "sgd", "rmsprop"]}


def field_comments(cls) -> dict[str, str]:
    """{field: its trailing `# comment`} from the source of cls and its dataclass bases."""
    import inspect
    import re
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+?)\s*$", source, re.M):
            out[m.group(1)] = m.group(2)
    return out


def add_config_args(parser: argparse.ArgumentParser, cls) -> None:
    """One `--flag` per dataclass field; defaults are left unset so we can tell what was given."""
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        tp, origin = _field_type(cls, f)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", comments.get(f.name, ""))
        help_text = f"{help_text} (default: {default})".strip()
        help_text = help_text.replace("%%", "%").replace("%", "%%")  # argparse %-formats help strings
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if tp is bool:
            parser.add_argument(flag, nargs="?", const=True, type=_parse_bool, metavar="BOOL", **kwargs)
        elif origin in (list, tuple):
            (inner,) = typing.get_args(tp)[:1]
            parser.add_argument(flag, nargs="+", type=inner, **kwargs)
        elif "choices" in f.metadata or f.name in NAMED_CHOICES:
            choices = f.metadata.get("choices", NAMED_CHOICES.get(f.name))
            parser.add_argument(flag, type=tp, choices=choices, **kwargs)
        else:
            parser.add_argument(flag, type=tp, metavar=tp.__name__.upper(), **kwargs)


def _coerce(cls, name: str, value):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    tp, origin = _field_type(cls, f)
    if value is None and f.default is None:  # "unset": the task resolves it (e.g. from a profile)
        return None
    try:
        if tp is bool:
            return value if isinstance(value, bool) else _parse_bool(value)
        if origin in (list, tuple):
            (inner,) = typing.get_args(tp)[:1]
            return [inner(v) for v in value]
        if tp is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, tp):
            return tp(value)
        return value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
        raise ConfigError(f"setting {name}: cannot use {value!r} as {tp.__name__}") from e


def build_config(cls, given: dict, quick_overrides: dict | None = None, config_file: str | None = None):
    """Defaults < quick profile < config file < command-line flags."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict = {}
    if given.get("quick"):
        values.update(quick_overrides or {})
    if config_file:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config file {config_file}: {e}") from e
        loaded = loaded.get("config", loaded)  # accept a run's config.json too
        values.update({k: v for k, v in loaded.items() if k != "out"})  # where to write stays a flag
    values.update(given)
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
