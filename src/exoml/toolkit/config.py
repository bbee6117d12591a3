"""Task settings as one dataclass per task, CLI flags generated from it, profiles and validation.

A task writes

    @dataclass
    class Config(Common):
        epochs: int = 10          # passes over the training split
        optimizer: str = "adam"   # adam | adamw | sgd | rmsprop

and `exoml run TASK --help` lists `--epochs`, `--optimizer`, ... Help text comes from
`field(metadata={"help": ...})` when given, else from the field's trailing comment, and ends
with the value the setting will really take: the default profile's value where the profile sets
it, else the field's default, then the other profiles' values (`(default: 15; profile cpu: 2,
quick: 1)`).

A profile is a named set of settings (`--profile NAME`; `--quick` is short for `--profile quick`).
`build_config` resolves everything in one place, with this precedence:

    field defaults < profile < --config FILE.json (e.g. a tuned best_config.json) < flags

and records the profile used in the config (`cfg.profile`, hence in the run's config.json).
Every value is checked there: its type (a config file's 2.5 is refused for an int setting, never
truncated) and its range (declared with `field(metadata={"min": .., "max": .., "above": ..,
"below": ..})`, else the project-wide rules of `RANGES` by setting name), with a one-line error.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
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
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N | mps",
                                                  "pattern": r"auto|cpu|mps|cuda(:\d+)?"})
    out: str = field(default="runs", metadata={"help": "folder that holds runs/<task>/<timestamp>/"})
    profile: str = field(default="full", metadata={
        "help": "named set of settings (the task's recipes); --quick is short for --profile quick"})
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


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_config_args(parser: argparse.ArgumentParser, cls, profiles: dict[str, dict] | None = None,
                    profile_help: dict[str, str] | None = None) -> None:
    """One `--flag` per dataclass field, plus `--quick`. Defaults are left unset in the parser (so
    build_config can tell what was given); the help shows the values the settings will take.
    `profiles` is {name: settings}, the default profile first; `profile_help` {name: one line}."""
    comments = field_comments(cls)
    profiles = profiles or {}
    default_profile = next(iter(profiles), None)
    for f in dataclasses.fields(cls):
        tp, origin = _field_type(cls, f)
        flag = "--" + f.name.replace("_", "-")
        base = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = profiles.get(default_profile, {}).get(f.name, base)
        help_text = f.metadata.get("help", comments.get(f.name, ""))
        if f.name == "profile" and profiles:
            listing = "; ".join(f"{p}: {profile_help.get(p) or _show_settings(s)}" if profile_help else p
                                for p, s in profiles.items())
            help_text = f"{help_text}. {listing}"
            shown = default_profile
        others = [f"{p}: {_show(s[f.name])}" for p, s in profiles.items()
                  if p != default_profile and f.name in s and s[f.name] != shown]
        help_text = f"{help_text} (default: {_show(shown)}{'; profile ' + ', '.join(others) if others else ''})"
        help_text = help_text.strip().replace("%%", "%").replace("%", "%%")  # argparse %-formats help
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if tp is bool:
            parser.add_argument(flag, nargs="?", const=True, type=_parse_bool, metavar="BOOL", **kwargs)
        elif origin in (list, tuple):
            (inner,) = typing.get_args(tp)[:1]
            parser.add_argument(flag, nargs="+", type=inner, **kwargs)
        elif f.name == "profile" and profiles:
            parser.add_argument(flag, type=str, choices=list(profiles), **kwargs)
        elif "choices" in f.metadata or f.name in NAMED_CHOICES:
            choices = f.metadata.get("choices", NAMED_CHOICES.get(f.name))
            parser.add_argument(flag, type=tp, choices=choices, **kwargs)
        else:
            parser.add_argument(flag, type=tp, metavar=tp.__name__.upper(), **kwargs)
    if "quick" in profiles:
        parser.add_argument("--quick", dest="profile", action="store_const", const="quick", default=argparse.SUPPRESS,
                            help="short for --profile quick: seconds, a smoke test of the whole pipeline")


def _show_settings(settings: dict) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in settings.items()) or "the defaults"


# Ranges by setting name, for settings that declare none: (token test, bounds). Bounds: min/max
# inclusive, above/below exclusive. A list setting has each element checked.
RANGES: tuple[tuple[typing.Callable[[str, list[str]], bool], dict], ...] = (
    (lambda n, t: n == "seed" or n.endswith("_seed"), {"min": 0}),
    (lambda n, t: "lr" in t, {"above": 0}),
    (lambda n, t: "batch" in t and "size" in t, {"min": 1}),
    (lambda n, t: "dropout" in t, {"min": 0, "below": 1}),
    (lambda n, t: "epochs" in t, {"above": 0}),
    (lambda n, t: "patience" in t, {"min": 0}),
    (lambda n, t: n in ("weight_decay", "threads") or n.endswith(("_subset", "_limit")) or n == "val_size",
     {"min": 0}),
    (lambda n, t: n in ("momentum", "label_smoothing", "val_fraction"), {"min": 0, "below": 1}),
    (lambda n, t: n in ("k", "k_max", "seeds", "n_init", "layers", "hidden", "width", "widths", "blocks", "convs",
                        "embed_dim", "vocab_size", "max_len", "z_dim", "daily_hidden", "daily_ensemble"), {"min": 1}),
    (lambda n, t: n == "cv_folds", {"min": 2}),
)


def _bounds(f: dataclasses.Field) -> dict:
    declared = {k: f.metadata[k] for k in ("min", "max", "above", "below") if k in f.metadata}
    if declared:
        return declared
    tokens = f.name.split("_")
    return next((b for test, b in RANGES if test(f.name, tokens)), {})


def _check_range(name: str, value, bounds: dict) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"setting {name}: {value!r} is not a finite number")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    rules = {"min": (lambda v, b: v >= b, ">="), "max": (lambda v, b: v <= b, "<="),
             "above": (lambda v, b: v > b, ">"), "below": (lambda v, b: v < b, "<")}
    for key, bound in bounds.items():
        ok, sign = rules[key]
        if not ok(value, bound):
            allowed = " and ".join(f"{rules[k][1]} {_show(b)}" for k, b in bounds.items())
            raise ConfigError(f"setting {name}: {_show(value)} is out of range (must be {allowed})")


def _coerce_one(name: str, tp, value):
    """value as type tp, without losing anything: 2.5 is not an int, "3" is not a number."""
    bad = ConfigError(f"setting {name}: cannot use {value!r} as {getattr(tp, '__name__', tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return _parse_bool(value)
            except argparse.ArgumentTypeError:
                raise bad from None
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    return value


def _coerce(cls, name: str, value):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    tp, origin = _field_type(cls, f)
    if value is None:
        raise ConfigError(f"setting {name} has no value: give --{name.replace('_', '-')} or a profile that sets it")
    bounds = _bounds(f)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"setting {name}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)[:1]
        out = [_coerce_one(name, inner, v) for v in value]
        for v in out:
            _check_range(name, v, bounds)
        return out
    out = _coerce_one(name, tp, value)
    _check_range(name, out, bounds)
    if "pattern" in f.metadata and not re.fullmatch(f.metadata["pattern"], out):
        raise ConfigError(f"setting {name}: {out!r} is not one of {f.metadata['help']}")
    return out


def build_config(cls, given: dict, profiles: dict[str, dict] | None = None, config_file: str | None = None,
                 defaults: dict | None = None):
    """The resolved settings: field defaults < `defaults` < profile < config file < given flags.

    `profiles` is {name: settings}, the default profile first. The profile is the one given
    (`--profile`, `--quick`), else the config file's, else the default; it is recorded in
    `cfg.profile`. Every value is type- and range-checked (ConfigError, one line)."""
    names = {f.name for f in dataclasses.fields(cls)}
    profiles = profiles or {}
    loaded: dict = {}
    if config_file:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config file {config_file}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file}: expected a JSON object of settings")
        loaded = loaded.get("config", loaded)  # accept a run's config.json too
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file}: its \"config\" entry must be a JSON object of settings")
        loaded = dict(loaded)
        loaded.pop("out", None)  # where to write stays a flag
        if loaded.pop("quick", False) is True:  # a config.json with `quick: true` instead of a profile
            loaded["profile"] = "quick"
    given = dict(given)
    if given.pop("quick", False) is True:
        given["profile"] = "quick"
    chosen = given.get("profile", loaded.get("profile", next(iter(profiles), None)))
    if profiles and chosen not in profiles:
        raise ConfigError(f"unknown profile {chosen!r}: choose from {', '.join(profiles)}")
    values: dict = dict(defaults or {})
    values.update(profiles.get(chosen, {}))
    values.update(loaded)
    values.update(given)
    if chosen is not None and "profile" in names:
        values["profile"] = chosen
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    for f in dataclasses.fields(cls):  # defaults are checked too: a profile may leave one unset (None)
        if f.name not in values:
            values[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})


def validate(cfg) -> None:
    """Re-check a config changed after build_config (tune's trials): types and ranges."""
    for f in dataclasses.fields(cfg):
        _coerce(type(cfg), f.name, getattr(cfg, f.name))


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
