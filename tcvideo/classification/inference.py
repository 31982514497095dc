"""Classifying videos by class names with a model of any family of the video-classification task.

    import tcvideo
    clf = tcvideo.load_tc_clip("models/tc_clip_k400")        # from `python -m tcvideo.convert tc-clip`
    logits = clf.logits(videos, ["abseiling", "air drumming"])  # videos [B, T, H, W, 3], normalised

    VideoClassifier("victr", victr_config, params)  # any family of tcvideo.classification.task.FAMILIES
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.core import model_dir as store
from tcvideo.clip.convert.common import ConversionError
from tcvideo.tc_clip import model as tcm
from tcvideo.classification.prompts import tokenize_prompts


@functools.partial(jax.jit, static_argnums=0)
def _forward_logits(model: Any, params: Any, videos: jax.Array, ids: jax.Array) -> jax.Array:
    # The module is a static (hashable) argument: classifiers of equal configs share compiled code.
    return model.apply({"params": params}, videos, ids)["logits"]


class VideoClassifier:
    """A video-text model of one family (TC-CLIP and its baselines, VicTR, ...) with its params, classifying
    videos against free-text classes.

    family: a name of ``FAMILIES`` ("tc_clip", "victr") or a ModelFamily; config: that family's model
    config (every family's has num_frames, clip, prompt_context_length, split_camel_case).
    """

    def __init__(self, family: Any, config: Any, params: Any, dtype: Any = jnp.float32,
                 prompt_prefix: Optional[str] = None):
        from tcvideo.classification.task import FAMILIES, ModelFamily
        if isinstance(family, str):
            self.family_name, family = family, FAMILIES.lookup(family)
        elif isinstance(family, ModelFamily):
            self.family_name = next((n for n, f in FAMILIES.items() if f is family), None)
        else:
            raise TypeError(f"VideoClassifier(family, config, params): family must be a model family name or a "
                            f"ModelFamily, got {type(family).__name__}")
        self.family = family
        self.config = config
        self.dtype = dtype
        # Training builds prompts with config.prompt_prefix; None keeps TC-CLIP's ctx_init / "a photo of a".
        self.prompt_prefix = prompt_prefix
        self.params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
        self.model = family.build(config, dtype=dtype, remat=False)
        self._forward = functools.partial(_forward_logits, self.model)

    @functools.lru_cache(maxsize=16)
    def _ids(self, class_names: tuple[str, ...], truncate: bool) -> jax.Array:
        c = self.config
        prefix = self.prompt_prefix
        if prefix is None:  # only TC-CLIP configs carry learnable-context settings
            prefix = c.ctx_init if getattr(c, "n_ctx", 0) else "a photo of a"
        return jnp.asarray(tokenize_prompts(class_names, c.prompt_context_length, prefix=prefix,
                                            split_camel_case=c.split_camel_case, truncate=truncate))

    def logits(self, videos: Any, class_names: Sequence[str], truncate: bool = False) -> np.ndarray:
        """videos [B, T, H, W, 3] (normalised like the training data) -> logits [B, C]."""
        videos = jnp.asarray(videos, self.dtype)
        want = (self.config.num_frames, self.config.clip.image_resolution, self.config.clip.image_resolution, 3)
        if videos.ndim != 5 or videos.shape[1:] != want:
            raise ValueError(f"videos must be [B, {', '.join(map(str, want))}], got {tuple(videos.shape)}")
        return np.asarray(self._forward(self.params, videos, self._ids(tuple(class_names), truncate)))

    def predict(self, videos: Any, class_names: Sequence[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Ranked (class, probability) pairs per video."""
        probs = jax.nn.softmax(self.logits(videos, class_names), axis=-1)
        out = []
        for row in np.asarray(probs):
            order = np.argsort(-row, kind="stable")[:top_k]
            out.append([(class_names[i], float(row[i])) for i in order])
        return out


def load_tc_clip(model_dir: str, dtype: Any = jnp.float32, config_overrides: Optional[dict] = None
                 ) -> VideoClassifier:
    """A model directory written by ``python -m tcvideo.convert tc-clip`` (or the trainer) -> classifier."""
    params, meta = store.load_model(model_dir)
    if meta.get("model") != "tc_clip":
        raise ConversionError(f"{model_dir} holds a {meta.get('model')!r} model, not 'tc_clip'")
    cfg = dict(meta["config"])
    cfg.update(config_overrides or {})
    return VideoClassifier("tc_clip", tcm.TCCLIPConfig.from_dict(cfg), params, dtype)
