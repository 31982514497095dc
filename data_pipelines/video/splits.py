"""Which examples of a built split a run uses: the official split files (TC-CLIP / ViFi-CLIP
`datasets_splits/*.txt` lists and `labels/*.csv` class files), or a seeded K-shot draw.

Official formats (read by the one reader of each in `annotations.py`):
  list   `relative/path.ext label` a line (mmaction), label an id of the list's class file;
         e.g. `train1_few_shot_{2,4,8,16}.txt`, `val1.txt`, `fs_base_s{1,2,3}_train.txt`,
         `base_val.txt`, `novel_val.txt`, `ZS_split{1,2,3}_K600_eval.txt`, `k400_splits/val.txt`.
  class  CSV `id,name` with header; e.g. `hmdb_51_labels.csv`, `hmdb_51_base_labels.csv`,
         `ZS_split1_K600.csv` (each split's 160 classes).

A listed video is found in the built split by its file stem (name without folder or extension): the
official lists name HMDB/UCF videos without their class folder and SSv2 videos as `<id>.webm`, while a
built split keeps whatever layout the user's folder has. Errors are `SplitFileError`s naming the data
config field (`train_list`, `test_list`, `class_names_file`) so the config check reports it.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np


class SplitFileError(ValueError):
    """A split or class file that cannot be used; ``field`` is the data config field naming it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def video_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(str(path)))[0]


def select_listed(paths: Sequence[str], list_path: str, num_classes: int, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``paths`` (a built split's relative paths) of the videos listed in ``list_path``,
    in list order, and their labels from the list. -> (idx int64 [M], labels int32 [M]).

    Raises SplitFileError naming ``field`` for a missing/unreadable file, a label outside
    0..num_classes-1, a listed video absent from the split or named twice, or a stem shared by
    several videos of the split."""
    from data_pipelines.video.annotations import AnnotationError, parse_annotations
    if not list_path or not os.path.isfile(list_path):
        raise SplitFileError(field, f"no such split file {list_path!r}")
    try:
        entries = parse_annotations(list_path, "mmaction")
    except AnnotationError as e:
        raise SplitFileError(field, str(e)) from None
    if not entries:
        raise SplitFileError(field, f"{list_path} lists no video")
    by_stem: dict[str, int] = {}
    shared: set[str] = set()
    for i, p in enumerate(paths):
        s = video_stem(p)
        if s in by_stem and paths[by_stem[s]] != p:  # the same file stored twice is one video
            shared.add(s)
        by_stem.setdefault(s, i)
    idx, labels, missing, seen = [], [], [], set()
    for e in entries:
        s = video_stem(e.path)
        if not 0 <= e.label < num_classes:
            raise SplitFileError(field, f"{list_path}:{e.line}: label {e.label} outside 0..{num_classes - 1} "
                                        f"(the class file has {num_classes} classes)")
        if s in seen:
            raise SplitFileError(field, f"{list_path}:{e.line}: {e.path!r} is listed twice")
        seen.add(s)
        if s in shared:
            raise SplitFileError(field, f"{list_path}:{e.line}: several videos of the split are named {s!r}")
        if s not in by_stem:
            missing.append(e.path)
            continue
        idx.append(by_stem[s])
        labels.append(e.label)
    if missing:
        raise SplitFileError(field, f"{len(missing)} of {len(entries)} videos of {list_path} are not in the split "
                                    f"(e.g. {missing[:3]}); build the dataset from a folder holding them")
    return np.asarray(idx, np.int64), np.asarray(labels, np.int32)


def _norm_name(name: str) -> str:
    return re.sub(r"[\s_]+", " ", str(name)).strip().lower()


def select_classes(dataset_names: Sequence[str], labels: np.ndarray, class_names: Sequence[str],
                   class_file: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Examples of the classes named in a class file (e.g. `*_base_labels.csv`), relabelled to the file's
    ids: -> (idx int64 [M] sorted, labels int32 [M]). Names match case- and `_`/space-insensitively."""
    lookup = {_norm_name(n): i for i, n in enumerate(dataset_names)}
    to_new = np.full(len(dataset_names), -1, np.int32)
    for new, name in enumerate(class_names):
        old = lookup.get(_norm_name(name))
        if old is None:
            raise SplitFileError(field, f"class {name!r} of {class_file} is not a class of the dataset "
                                        f"(e.g. {list(dataset_names)[:3]})")
        to_new[old] = new
    labels = np.asarray(labels)
    idx = np.flatnonzero(to_new[labels] >= 0)
    return idx.astype(np.int64), to_new[labels[idx]]


def load_class_file(path: str, field: str) -> list[str]:
    """Class names of an official `id,name` CSV (or any `annotations.load_class_names` file)."""
    from data_pipelines.video.annotations import AnnotationError, load_class_names
    if not path or not os.path.isfile(path):
        raise SplitFileError(field, f"no such class file {path!r}")
    try:
        names = load_class_names(path)
    except AnnotationError as e:
        raise SplitFileError(field, str(e)) from None
    if not names:
        raise SplitFileError(field, f"{path} names no class")
    return names


def few_shot_indices(labels: np.ndarray, k: int, seed: int, classes: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions of k examples per class (of `classes`, default all present), drawn
    without replacement with a generator seeded per (seed, class): adding a class or
    changing the order of the others does not change a class's shots. (An option: the
    recipes train on the official `train1_few_shot_K.txt` / `fs_base_sN_train.txt` lists.)

    Raises if a class has fewer than k examples (a silent short class would skew results).
    """
    labels = np.asarray(labels)
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < k:
            raise ValueError(f"class {int(c)} has {len(members)} examples, fewer than k={k}")
        rng = np.random.default_rng([seed, int(c)])
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros((0,), np.int64)
