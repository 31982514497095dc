"""Video data pipelines: TFDS builders from local files, synthetic data, TC-CLIP sampling
and augmentation. Kept import-light (no TF here): build workers import submodules of this
package in fresh processes.

Registry: a dataset is a factory `f(config=ConfigDict, **kwargs) -> dataset` whose result
has `class_names`, `num_examples` ({split: n}) and `split(name)` returning a random-access
split (`__len__`, `labels`, `num_frames(i)`, `get_frames(i, indices)`, `is_jpeg`).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

DATASETS: dict[str, Callable[..., Any]] = {}

# Modules that register the built-in datasets, imported on first lookup so that
# `import data_pipelines.video` does not pull in TensorFlow.
_BUILTIN_MODULES = ("data_pipelines.video.synthetic_source", "data_pipelines.video.video_folder")


def register_dataset(name: str):
    """Decorator registering a dataset factory under `name`."""

    def wrap(fn):
        if name in DATASETS and DATASETS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return wrap


def get_dataset(name: str, **kwargs):
    """Instantiate the dataset registered as `name` (kwargs go to its factory)."""
    if name not in DATASETS:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)
