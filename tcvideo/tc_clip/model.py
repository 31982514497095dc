"""TC-CLIP and its baselines (vanilla CLIP, ViFi-CLIP, TC only, VP only) as configs of one model.

``TCCLIP(config).apply({'params': p}, video [B, T, H, W, 3], ids [C, L])`` ->
``{'logits': [B, C], 'video_embedding': [B, E], 'text_features': [B', C, E], ...}``
with B' = B when prompts are video-conditioned and 1 otherwise.

Variants (``TCCLIPConfig``):
  * ``use_tc`` False: frames are encoded by plain CLIP layers (no context tokens in attention);
  * ``use_vp`` False: no prompt generation layer (text features shared by all videos);
  * ``n_ctx`` 0: fixed hand-written prompts, as vanilla CLIP / ViFi-CLIP;
  * ``context_summary``: bipartite (default), kmeans, dpc_knn, random, none;
  * ``tc_layers``: TC in a subset of layers (the lightweight setting).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from tcvideo.clip.model import CLIPConfig, DictConfig, get_config, l2_normalize
from tcvideo.tc_clip.prompting import PromptedTextEncoder
from tcvideo.tc_clip.vision import TCVisionConfig, TCVisionTransformer, official_return_layers

Array = jax.Array
Dtype = Any


@dataclasses.dataclass(frozen=True)
class TCCLIPConfig(DictConfig):
    clip: CLIPConfig = CLIPConfig()
    num_frames: int = 16
    use_tc: bool = True
    use_vp: bool = True
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    prompt_levels: tuple[int, ...] = ()        # 1-based text blocks; () = the last one
    context_tokens: int = 96
    seed_ratio: float = 0.3
    tome_r: int = 100
    context_summary: str = "bipartite"
    local_global_bias: bool = True
    positional_embedding_type: str = "space"
    tc_layers: Optional[tuple[int, ...]] = None  # None = all layers >= 1
    stop_gradient_context: bool = True
    split_camel_case: bool = True
    prompt_context_length: int = 77              # token length of class prompts (official configs: 30)

    def __post_init__(self):
        if isinstance(self.clip, Mapping):
            object.__setattr__(self, "clip", CLIPConfig.from_dict(self.clip))
        if isinstance(self.clip, str):
            object.__setattr__(self, "clip", get_config(self.clip))
        for name in ("prompt_levels", "tc_layers"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(int(i) for i in v))
        if not self.prompt_levels:
            object.__setattr__(self, "prompt_levels", (self.clip.text_layers,) if self.use_vp else ())
        if not self.use_vp:
            object.__setattr__(self, "prompt_levels", ())
        if self.use_vp and self.clip.embed_dim != self.clip.text_width:
            raise ValueError(f"video-conditional prompting attends from text width {self.clip.text_width} to "
                             f"projected context tokens of width embed_dim={self.clip.embed_dim}; they must match")
        if self.use_vp and self.n_ctx <= 0:
            raise ValueError("use_vp needs n_ctx > 0")
        if not 1 <= self.prompt_context_length <= self.clip.context_length:
            raise ValueError(f"prompt_context_length={self.prompt_context_length} must be in "
                             f"1..{self.clip.context_length} (the text positional table)")
        num_patches = self.clip.num_patches
        seeds = int(num_patches * self.seed_ratio)
        if (self.use_tc or self.use_vp) and seeds < 1:
            raise ValueError(f"seed_ratio={self.seed_ratio} selects no seed token of {num_patches} patches")
        if self.context_summary != "none" and (self.use_tc or self.use_vp) and self.context_tokens > seeds * self.num_frames:
            raise ValueError(f"context_tokens={self.context_tokens} is larger than the {seeds * self.num_frames} seed "
                             f"tokens ({seeds} per frame x {self.num_frames} frames)")

    @property
    def vision(self) -> TCVisionConfig:
        depth = self.clip.vision_layers
        if self.use_vp:
            out_layer, ctx_layers = official_return_layers(depth, self.prompt_levels)
        else:
            out_layer, ctx_layers = depth - 1, ()
        return TCVisionConfig(
            num_frames=self.num_frames, context_tokens=self.context_tokens, seed_ratio=self.seed_ratio,
            tome_r=self.tome_r, context_summary=self.context_summary, local_global_bias=self.local_global_bias,
            positional_embedding_type=self.positional_embedding_type,
            tc_layers=self.tc_layers if self.use_tc else (), context_layers=ctx_layers, output_layer=out_layer)



VARIANTS: dict[str, dict] = {
    "tc_clip": dict(use_tc=True, use_vp=True, n_ctx=4),
    "tc_only": dict(use_tc=True, use_vp=False, n_ctx=0),
    "vp_only": dict(use_tc=False, use_vp=True, n_ctx=4),
    "vifi_clip": dict(use_tc=False, use_vp=False, n_ctx=0),
    "vanilla_clip": dict(use_tc=False, use_vp=False, n_ctx=0),
    # Lightweight: TC in the last third of the layers only, alpha 0.2 and k = 64 (cost in benchmarks/README.md).
    "tc_clip_light": dict(use_tc=True, use_vp=True, n_ctx=4, context_tokens=64, seed_ratio=0.2),
}


def variant_config(name: str, clip: Any = "ViT-B/16", **overrides) -> TCCLIPConfig:
    """A named variant ('tc_clip', 'vifi_clip', ...) with field overrides."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown TC-CLIP variant {name!r}; known: {sorted(VARIANTS)}")
    clip_cfg = get_config(clip)
    fields = {**VARIANTS[name], **overrides}
    if name == "tc_clip_light" and "tc_layers" not in overrides:
        depth = clip_cfg.vision_layers
        fields["tc_layers"] = tuple(range(max(1, depth - max(1, depth // 3)), depth))
    return TCCLIPConfig(clip=clip_cfg, **fields)


class TCCLIP(nn.Module):
    """TC-CLIP. video [B, T, H, W, 3], ids [C, L] -> dict (see module docstring)."""

    config: TCCLIPConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    remat: bool = False  # rematerialise transformer blocks (training memory); outputs are unchanged

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, remat=self.remat)
        self.visual = TCVisionTransformer(c.clip, c.vision, name="visual", **kw)
        self.text = PromptedTextEncoder(c.clip, n_ctx=c.n_ctx, prompt_levels=c.prompt_levels,
                                        stop_gradient_context=c.stop_gradient_context, name="text", **kw)
        self.logit_scale = self.param("logit_scale", lambda *_: jnp.asarray(jnp.log(1 / 0.07), self.param_dtype))

    def encode_video(self, video: Array, return_diagnostics: bool = False) -> dict:
        """-> {'cls': [B, T, E], 'video_embedding': [B, E] (normalised), 'context': {layer: [B, k, E]}}."""
        out = self.visual(video, return_diagnostics=return_diagnostics)
        out["video_embedding_unnorm"] = out["cls"].mean(axis=1)
        out["video_embedding"] = l2_normalize(out["video_embedding_unnorm"])
        return out

    def encode_text(self, ids: Array, context: Optional[list] = None) -> Array:
        """ids [C, L] (+ context tokens) -> unnormalised text features [B' , C, E]."""
        return self.text(ids, context)

    def __call__(self, video: Array, ids: Array, return_diagnostics: bool = False) -> dict:
        v = self.encode_video(video, return_diagnostics=return_diagnostics)
        context = [v["context"][l] for l in sorted(v["context"])] if self.config.use_vp else None
        text = self.encode_text(ids, context)
        text_n = l2_normalize(text)
        scale = jnp.exp(self.logit_scale).astype(text_n.dtype)
        logits = scale * jnp.einsum("be,bce->bc", v["video_embedding"], jnp.broadcast_to(
            text_n, (video.shape[0],) + text_n.shape[1:]))
        return {**v, "logits": logits, "text_features": text_n, "text_features_unnorm": text}


def init_params(config: TCCLIPConfig, rng: Optional[Array] = None, dtype: Dtype = jnp.float32,
                num_classes: int = 2) -> dict:
    """Random parameters of the right shapes (real ones come from CLIP or tcvideo.convert)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    c = config.clip
    video = jnp.zeros((1, config.num_frames, c.image_resolution, c.image_resolution, 3), dtype)
    ids = jnp.zeros((num_classes, c.context_length), jnp.int32)
    return jax.jit(TCCLIP(config, param_dtype=dtype).init)(rng, video, ids)["params"]


def param_shapes(config: TCCLIPConfig) -> dict:
    c = config.clip
    video = jax.ShapeDtypeStruct((1, config.num_frames, c.image_resolution, c.image_resolution, 3), jnp.float32)
    ids = jax.ShapeDtypeStruct((2, c.context_length), jnp.int32)
    return jax.eval_shape(TCCLIP(config).init, jax.random.PRNGKey(0), video, ids)["params"]
