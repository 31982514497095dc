"""Few-shot subsets and base-to-novel class splits (indices into a split's examples)."""
from __future__ import annotations

import numpy as np


def few_shot_indices(labels: np.ndarray, k: int, seed: int, classes: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of k examples per class (of `classes`, default all present), drawn
    without replacement with a generator seeded per (seed, class): adding a class or
    changing the order of the others does not change a class's shots.

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


def base_novel_classes(num_classes: int, num_base: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(base ids, novel ids): the first half of the class ids (rounded up) are base, as
    in ViFi-CLIP / TC-CLIP's base-to-novel splits (e.g. K400 200 / 200, HMDB 26 / 25)."""
    nb = (num_classes + 1) // 2 if num_base is None else int(num_base)
    if not 0 < nb < num_classes:
        raise ValueError(f"num_base must be in 1..{num_classes - 1}, got {nb}")
    return np.arange(nb), np.arange(nb, num_classes)


def base_novel_indices(labels: np.ndarray, which: str, num_classes: int, *, shots: int | None = 16,
                       seed: int = 0, num_base: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Examples of the base or novel classes and their class ids.

    which: 'base' or 'novel'. shots: examples per class (16 for base training, None for all,
    used for evaluation). Returns (sorted example indices, class ids of the subset); the
    caller remaps labels to 0..len(class ids)-1 so each half is its own classification task.
    """
    base, novel = base_novel_classes(num_classes, num_base)
    classes = {"base": base, "novel": novel}[which]
    labels = np.asarray(labels)
    if shots:
        return few_shot_indices(labels, shots, seed, classes), classes
    return np.flatnonzero(np.isin(labels, classes)), classes
