"""The one registry type, and the registry of tasks: what the one trainer (``core/train.py``) trains.

A task bundles everything model- and data-specific of an experiment (model, parameter init, training
stream, loss, evaluation); the trainer supplies the rest (devices and sharding, optimizer and schedule,
accumulation, mixed precision, checkpoints and resume, metrics). ``config.task`` names the task;
``tcvideo.core.task.Task`` documents the interface and ``tcvideo/classification/task.py`` is the worked
example. A new task is a ``@register_task("name")`` class in a module ``tcvideo/<system>/task.py``.

The core knows no system: lookups of a missing name import the ``task`` and ``family`` modules of every
package under ``tcvideo/`` (``discover_systems``), which register themselves. Model families of the
classification task and datasets of ``data_pipelines.video`` are ``Registry`` objects too.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any, Callable, Iterable, Optional

# Modules of a system package that register tasks or model families when imported.
REGISTERING_MODULES = ("task", "family")


class Registry(dict):
    """name -> object, filled by ``@registry.register(name)``. ``lookup`` runs ``discover`` (imports the
    modules that register the built-in entries) before reporting a name as unknown."""

    def __init__(self, kind: str, discover: Optional[Callable[[], None]] = None):
        super().__init__()
        self.kind = kind
        self._discover = discover
        self._discovered = False

    def register(self, name: str, obj: Any = None):
        """``registry.register(name, obj)``, or as a decorator ``@registry.register(name)``."""

        def add(o):
            if name in self and self[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = o
            return o

        return add if obj is None else add(obj)

    def discover(self) -> None:
        if self._discover is not None and not self._discovered:
            self._discovered = True
            self._discover()

    def names(self) -> list[str]:
        self.discover()
        return sorted(self)

    def lookup(self, name: str) -> Any:
        """The entry registered as ``name``; KeyError listing the known names."""
        if name not in self:
            self.discover()
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self)}")
        return self[name]


def discover_systems(packages: Optional[Iterable[str]] = None) -> None:
    """Import ``tcvideo.<pkg>.task`` / ``tcvideo.<pkg>.family`` of every package under ``tcvideo/``
    except ``core`` (or of ``packages``), so that their registrations run."""
    import tcvideo
    if packages is None:
        packages = [m.name for m in pkgutil.iter_modules(tcvideo.__path__) if m.ispkg and m.name != "core"]
    for pkg in packages:
        for mod in REGISTERING_MODULES:
            name = f"tcvideo.{pkg}.{mod}"
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)


TASKS = Registry("task", discover_systems)
DEFAULT_TASK = "video_classification"


def register_task(name: str):
    """Class decorator registering a Task subclass under ``name``."""
    return TASKS.register(name)


def task_names() -> list[str]:
    return TASKS.names()


def get_task(config):
    """The task named by ``config.task`` (default: video classification), built from the config.

    Raises ConfigError naming ``config.task`` for an unknown name; the task's constructor validates
    the rest of the config (ConfigError naming the field) before any compute.
    """
    from tcvideo.core.config import ConfigError

    name = config.get("task", DEFAULT_TASK)
    try:
        cls = TASKS.lookup(name)
    except KeyError as e:
        raise ConfigError(f"config.task: {e.args[0]}") from None
    return cls(config)
