"""The task registry: task name -> the `Task` its module declares (contract.py says what a task is).

The ten built-in exercises live one module each, grouped by family; a module is imported only
when its task is used (torch is slow to load), except by `exoml list`, `exoml run all` and
`exoml report`, which read every task. `register(task)` adds a task defined anywhere else (a
plugin, a test's toy task): from then on every command treats it like a built-in one.
"""
from __future__ import annotations

import importlib

from ..errors import ExomlError
from .contract import FULL, QUICK, Headline, Profile, Reference, Task, Tuning  # noqa: F401  (the contract)

# name -> module declaring TASK, in the order `exoml list` and `exoml run all` use.
BUILTIN: dict[str, str] = {
    "cifar10": "exoml.tasks.vision.cifar10",
    "boston": "exoml.tasks.tabular.boston",
    "imdb": "exoml.tasks.text.imdb",
    "iris": "exoml.tasks.tabular.iris",
    "kddcup": "exoml.tasks.tabular.kddcup",
    "gan": "exoml.tasks.generative.gan",
    "electricity": "exoml.tasks.timeseries.electricity",
    "mnist": "exoml.tasks.vision.mnist",
    "fashion-mnist": "exoml.tasks.vision.fashion_mnist",
    "cifar100": "exoml.tasks.vision.cifar100",
}

_registered: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make `task` known to every command (replacing a registered task of the same name)."""
    if not isinstance(task, Task):
        raise TypeError(f"register() takes a Task, not {type(task).__name__}")
    if task.name in BUILTIN:
        raise ExomlError(f"task name {task.name!r} is taken by a built-in task")
    _registered[task.name] = task
    return task


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> list[str]:
    """Every task name: the built-in ones, then the registered ones."""
    return [*BUILTIN, *_registered]


def get(name: str) -> Task:
    """The task called `name` (imports its module)."""
    if name in _registered:
        return _registered[name]
    if name not in BUILTIN:
        raise ExomlError(f"unknown task {name!r}: choose from {', '.join(names())}")
    task = importlib.import_module(BUILTIN[name]).TASK
    if task.name != name:
        raise ExomlError(f"module {BUILTIN[name]} declares task {task.name!r}, registered as {name!r}")
    return task


def all_tasks() -> list[Task]:
    return [get(n) for n in names()]
