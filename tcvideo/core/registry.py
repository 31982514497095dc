"""Task registry: what the one trainer (``tcvideo/core/train.py``) trains and evaluates.

A task bundles everything model- and data-specific of an experiment (model, parameter init, training
stream, loss, evaluation); the trainer supplies the rest (devices and sharding, optimizer and schedule,
accumulation, mixed precision, checkpoints and resume, metrics). ``config.task`` names the task;
``tcvideo.core.task.Task`` documents the interface and ``classification.py`` (TC-CLIP and its
baselines) is the worked example. A new task is a module with a ``@register_task("name")`` class,
imported from ``_BUILTIN_MODULES`` below.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

TASKS: dict[str, Callable[..., Any]] = {}

# Imported on first lookup so that `import tcvideo.core.registry` stays light.
_BUILTIN_MODULES = (
    "tcvideo.classification.task",
    "tcvideo.fs_cal.task",
    "tcvideo.victr.family",  # registers the "victr" model family of video_classification
    "tcvideo.ov_oad.task",
)

DEFAULT_TASK = "video_classification"


def register_task(name: str):
    """Class decorator registering a Task subclass under `name`."""

    def wrap(cls):
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is already registered")
        TASKS[name] = cls
        return cls

    return wrap


def task_names() -> list[str]:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    return sorted(TASKS)


def get_task(config):
    """The task named by ``config.task`` (default: video classification), built from the config.

    Raises ConfigError naming ``config.task`` for an unknown name; the task's constructor validates
    the rest of the config (ConfigError naming the field) before any compute.
    """
    from tcvideo.core.config import ConfigError

    name = config.get("task", DEFAULT_TASK)
    if name not in task_names():
        raise ConfigError(f"config.task: unknown task {name!r}; registered: {task_names()}")
    return TASKS[name](config)
