"""Weight-space ensembling (WiSE-FT) of a fine-tuned TC-CLIP with its CLIP initialisation."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tcvideo.core.tree_util import flatten as _flatten, unflatten as _unflatten


def weight_ensemble(clip_init_params: Mapping[str, Any], finetuned_params: Mapping[str, Any], w: float) -> dict:
    """WiSE-FT: ``fused = (1 - w) * clip_init + w * finetuned`` for every parameter.

    Semantics (stated explicitly because the official docs and code disagree):
      * ``w = 1.0`` returns the fine-tuned model unchanged;
      * ``w = 0.0`` returns the CLIP-initialised model (for parameters CLIP has);
      * parameters that the CLIP-initialised tree lacks, or whose shape differs there
        (local/global bias tables, prompt learner ctx, prompt generation layers when the init tree
        does not contain them), are taken from the fine-tuned model unmixed, for every ``w``.
    The official zero-shot evaluation uses ``w = 0.7``.

    ``clip_init_params`` is the TC-CLIP parameter tree as built from CLIP before fine-tuning
    (``tcvideo.tc_clip.convert.clip_init_params``) or a plain CLIP tree with TC-CLIP names; arrays
    may be numpy or jax. Returns a new nested dict with the fine-tuned dtypes.
    """
    w = float(w)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight_ensemble: w={w} must be in [0, 1] (1 = fine-tuned, 0 = CLIP init)")
    init = _flatten(clip_init_params)
    out = {}
    for path, ft in _flatten(finetuned_params).items():
        base = init.get(path)
        if base is None or tuple(np.shape(base)) != tuple(np.shape(ft)) or _clip_lacks(path):
            out[path] = ft
        else:
            dt = ft.dtype
            out[path] = ((1.0 - w) * np.asarray(base, np.float32) + w * np.asarray(ft, np.float32)).astype(dt)
    return _unflatten(out)


# Parameters that a CLIP checkpoint does not have: in a TC-CLIP tree built by clip_init_params they
# exist (random / copied initial values), but the official ensemble takes them from the fine-tuned model.
_CLIP_LACKS = ("local_global_bias", "text/ctx", "prompt_generation")


def _clip_lacks(path: str) -> bool:
    return any(s in path for s in _CLIP_LACKS)
