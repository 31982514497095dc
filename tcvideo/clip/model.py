"""CLIP in Flax Linen, math identical to OpenAI CLIP (ViT image tower + causal text tower).

Parameter names follow OpenAI's checkpoint layout (``visual/conv1``, ``transformer/resblocks_3/attn``,
``ln_final``, ...) so that conversion code (tcvideo.convert) is a near one-to-one mapping.
Weights loading lives in tcvideo.convert, never here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from tcvideo.clip.layers import LayerNorm, ResidualAttentionBlock

Array = jax.Array
Dtype = Any


class DictConfig:
    """``to_dict`` / ``from_dict`` of tcvideo's frozen config dataclasses (CLIP, TC-CLIP, VicTR, OV-OAD).
    Nested configs come out as dicts (``dataclasses.asdict`` recurses); each class turns them back into
    configs in ``__post_init__``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """``cls(**d)``; unknown keys are a ValueError naming them and the known ones."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; known: {sorted(fields)}")
        return cls(**dict(d))


@dataclasses.dataclass(frozen=True)
class CLIPConfig(DictConfig):
    """Architecture of a CLIP model. Heads default to width // 64 as in OpenAI's build_model."""

    embed_dim: int = 512
    image_resolution: int = 224
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: Optional[int] = None
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 512
    text_heads: Optional[int] = None
    text_layers: int = 12

    def __post_init__(self):
        if self.vision_heads is None:
            object.__setattr__(self, "vision_heads", max(1, self.vision_width // 64))
        if self.text_heads is None:
            object.__setattr__(self, "text_heads", max(1, self.text_width // 64))
        for name in ("vision_width", "text_width"):
            heads = getattr(self, name.replace("width", "heads"))
            if getattr(self, name) % heads:
                raise ValueError(f"CLIPConfig.{name}={getattr(self, name)} is not divisible by "
                                 f"{name.replace('width', 'heads')}={heads}")
        if self.image_resolution % self.patch_size:
            raise ValueError(f"CLIPConfig.image_resolution={self.image_resolution} is not a multiple of "
                             f"patch_size={self.patch_size}")

    @property
    def grid_size(self) -> int:
        return self.image_resolution // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size ** 2



PRESETS: dict[str, CLIPConfig] = {
    "ViT-B/32": CLIPConfig(patch_size=32),
    "ViT-B/16": CLIPConfig(patch_size=16),
    "ViT-L/14": CLIPConfig(embed_dim=768, patch_size=14, vision_width=1024, vision_layers=24,
                           text_width=768, text_layers=12),
    "ViT-L/14@336": CLIPConfig(embed_dim=768, image_resolution=336, patch_size=14, vision_width=1024,
                               vision_layers=24, text_width=768, text_layers=12),
    # Small sizes for tests, demos and notebooks on a CPU.
    "tiny": CLIPConfig(embed_dim=64, image_resolution=32, patch_size=8, vision_width=64, vision_layers=2,
                       vision_heads=2, context_length=77, text_width=64, text_heads=2, text_layers=2),
}


def get_config(name_or_config: Any) -> CLIPConfig:
    """A CLIPConfig from a preset name, a CLIPConfig, or a mapping of fields."""
    if isinstance(name_or_config, CLIPConfig):
        return name_or_config
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"Unknown CLIP preset {name_or_config!r}; known: {sorted(PRESETS)}")
        return PRESETS[name_or_config]
    return CLIPConfig.from_dict(dict(name_or_config))


def patchify(images: Array, patch_size: int) -> Array:
    """[B, H, W, C] -> [B, (H/p)*(W/p), p*p*C], patches in row-major order, pixels (py, px, c)."""
    b, h, w, c = images.shape
    p = patch_size
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class PatchEmbed(nn.Module):
    """CLIP's bias-free patch convolution, computed as one matmul. [B, H, W, 3] -> [B, N-1, D].

    The kernel is stored as a conv kernel [p, p, 3, D] (what nn.Conv would hold).
    """

    width: int
    patch_size: int
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: Array) -> Array:
        p = self.patch_size
        c = images.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, c, self.width), self.param_dtype)
        dt = self.dtype or jnp.promote_types(images.dtype, self.param_dtype)
        return patchify(images.astype(dt), p) @ kernel.reshape(p * p * c, self.width).astype(dt)


class VisionEmbedding(nn.Module):
    """Patch embedding + class token + positional embedding. [B, H, W, 3] -> [B, N, D].

    With ``num_frames`` set and ``joint`` positional embedding the table is [T, N, D]
    and the input is [B, T, H, W, 3]; otherwise frames share the [N, D] table.
    """

    width: int
    patch_size: int
    grid_size: int
    positional_embedding_type: str = "space"
    num_frames: int = 1
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, frames: Array) -> Array:
        """frames [B, T, H, W, 3] -> [B, T, N, D]."""
        b, t = frames.shape[:2]
        scale = self.width ** -0.5
        init = lambda key, shape, dtype: scale * jax.random.normal(key, shape, dtype)
        n = self.grid_size ** 2 + 1
        x = PatchEmbed(self.width, self.patch_size, self.dtype, self.param_dtype, name="conv1")(
            frames.reshape(b * t, *frames.shape[2:]))
        dt = x.dtype
        cls = self.param("class_embedding", init, (self.width,), self.param_dtype).astype(dt)
        x = jnp.concatenate([jnp.broadcast_to(cls, (b * t, 1, self.width)), x], axis=1)
        x = x.reshape(b, t, n, self.width)
        if self.positional_embedding_type == "space":
            pos = self.param("positional_embedding", init, (n, self.width), self.param_dtype)
        elif self.positional_embedding_type == "joint":
            pos = self.param("positional_embedding", init, (self.num_frames, n, self.width), self.param_dtype)
            if t != self.num_frames:
                raise ValueError(f"joint positional embedding was built for {self.num_frames} frames, "
                                 f"got a video of {t} frames")
        else:
            raise ValueError(f"positional_embedding_type must be 'space' or 'joint', got "
                             f"{self.positional_embedding_type!r}")
        return x + pos.astype(dt)


class VisionTransformer(nn.Module):
    """CLIP ViT. images [B, H, W, 3] -> (embeddings [B, E], tokens [B, N, D] before ln_post)."""

    config: CLIPConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: Array) -> tuple[Array, Array]:
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = VisionEmbedding(c.vision_width, c.patch_size, c.grid_size, name="embed", **kw)(images[:, None])[:, 0]
        x = LayerNorm(name="ln_pre", **kw)(x)
        for i in range(c.vision_layers):
            x = ResidualAttentionBlock(c.vision_width, c.vision_heads, name=f"resblocks_{i}", **kw)(x)
        cls = LayerNorm(name="ln_post", **kw)(x[:, 0])
        proj = self.param("proj", nn.initializers.normal(c.vision_width ** -0.5),
                          (c.vision_width, c.embed_dim), self.param_dtype)
        return cls @ proj.astype(cls.dtype), x


class TextTransformer(nn.Module):
    """CLIP text tower. ids [B, L] int -> embeddings [B, E] (EOT token = argmax of ids)."""

    config: CLIPConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass (same params, same values)

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        block = nn.remat(ResidualAttentionBlock) if self.remat else ResidualAttentionBlock
        self.token_embedding = nn.Embed(c.vocab_size, c.text_width, param_dtype=self.param_dtype,
                                        embedding_init=nn.initializers.normal(0.02))
        self.positional_embedding = self.param("positional_embedding", nn.initializers.normal(0.01),
                                               (c.context_length, c.text_width), self.param_dtype)
        self.resblocks = [block(c.text_width, c.text_heads, causal=True,
                                                 name=f"resblocks_{i}", **kw) for i in range(c.text_layers)]
        self.ln_final = LayerNorm(**kw)
        self.text_projection = self.param("text_projection", nn.initializers.normal(c.text_width ** -0.5),
                                          (c.text_width, c.embed_dim), self.param_dtype)

    def embed_tokens(self, ids: Array) -> Array:
        """ids [..., L] -> token embeddings [..., L, D] (no positional embedding)."""
        emb = self.token_embedding(ids)
        return emb.astype(self.dtype or emb.dtype)

    def encode_embeddings(self, x: Array, ids: Array) -> Array:
        """Run the tower on prompt embeddings x [B, L, D] (no positions yet) -> [B, E]."""
        x = x + self.positional_embedding[: x.shape[1]].astype(x.dtype)
        for block in self.resblocks:
            x = block(x)
        return self.pool_and_project(x, ids)

    def pool_and_project(self, x: Array, ids: Array) -> Array:
        """Hidden states [..., L, D] -> ln_final at the EOT position (argmax of ids [..., L]) @ text_projection.

        ``ids`` may have fewer leading axes than ``x`` (prompts shared by a batch of videos: x [B, C, L, D],
        ids [C, L]); they broadcast. LayerNorm is per token, so pooling before it is identical.
        """
        eot = jnp.argmax(ids, axis=-1)
        idx = eot.reshape((1,) * (x.ndim - 2 - eot.ndim) + eot.shape + (1, 1))
        pooled = self.ln_final(jnp.take_along_axis(x, idx, axis=-2)[..., 0, :])
        return pooled @ self.text_projection.astype(pooled.dtype)

    def __call__(self, ids: Array) -> Array:
        return self.encode_embeddings(self.embed_tokens(ids), ids)


def l2_normalize(x: Array, axis: int = -1) -> Array:
    return x / jnp.linalg.norm(x, axis=axis, keepdims=True)


class CLIP(nn.Module):
    """OpenAI CLIP. ``encode_image`` [B, H, W, 3] -> [B, E]; ``encode_video`` [B, T, H, W, 3] -> [B, T, E];
    ``encode_text`` [B, L] -> [B, E]; ``__call__`` -> (logits_per_image [Bi, Bt], logits_per_text)."""

    config: CLIPConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.visual = VisionTransformer(self.config, name="visual", **kw)
        self.text = TextTransformer(self.config, name="text", **kw)
        self.logit_scale = self.param("logit_scale", lambda *_: jnp.asarray(jnp.log(1 / 0.07), self.param_dtype))

    def encode_image(self, images: Array) -> Array:
        return self.visual(images)[0]

    def encode_video(self, video: Array) -> Array:
        """Per-frame encoding: [B, T, H, W, 3] -> [B, T, E]."""
        b, t = video.shape[:2]
        return self.encode_image(video.reshape(b * t, *video.shape[2:])).reshape(b, t, -1)

    def encode_text(self, ids: Array) -> Array:
        return self.text(ids)

    def __call__(self, images: Array, ids: Array) -> tuple[Array, Array]:
        img = l2_normalize(self.encode_image(images))
        txt = l2_normalize(self.encode_text(ids))
        logits = jnp.exp(self.logit_scale).astype(img.dtype) * img @ txt.T
        return logits, logits.T


def init_params(config: CLIPConfig, rng: Optional[Array] = None, dtype: Dtype = jnp.float32) -> dict:
    """Randomly initialised parameters (for tests and demos; real weights come from tcvideo.convert)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    model = CLIP(config, param_dtype=dtype)
    images = jnp.zeros((1, config.image_resolution, config.image_resolution, 3), dtype)
    ids = jnp.zeros((1, config.context_length), jnp.int32)
    return jax.jit(model.init)(rng, images, ids)["params"]
