"""Video data pipelines: TFDS builders from local files, synthetic data, TC-CLIP sampling
and augmentation. Kept import-light (no TF here): build workers import submodules of this
package in fresh processes.

Registry: a dataset is a factory `f(config=ConfigDict, **kwargs) -> dataset` whose result
has `class_names`, `num_examples` ({split: n}) and `split(name)` returning a random-access
split (`__len__`, `labels`, `paths` (relative video paths, for split files), `num_frames(i)`,
`get_frames(i, indices)`, `is_jpeg`).
"""
from __future__ import annotations

import importlib

from tcvideo.core.registry import Registry

# Modules that register the built-in datasets, imported on first lookup so that
# `import data_pipelines.video` does not pull in TensorFlow.
_BUILTIN_MODULES = ("data_pipelines.video.synthetic_source", "data_pipelines.video.video_folder")


def _import_builtin() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


DATASETS = Registry("dataset", _import_builtin)


def register_dataset(name: str):
    """Decorator registering a dataset factory under `name`."""
    return DATASETS.register(name)


def get_dataset(name: str, **kwargs):
    """Instantiate the dataset registered as `name` (kwargs go to its factory); KeyError listing the
    registered names for an unknown one."""
    return DATASETS.lookup(name)(**kwargs)
