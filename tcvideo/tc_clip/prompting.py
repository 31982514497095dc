"""Text side of TC-CLIP: learnable context vectors and video-conditional prompting.

Prompts (``tcvideo.classification.prompts``) are ``"{ctx_init} {class name}."`` tokenised; the n_ctx token embeddings after SOT are replaced
by learnable vectors (``prompt_learner/ctx``). Before text block ``level - 1`` the hidden states of those
vectors attend to the video's context tokens (PromptGenerationLayer), giving one text embedding per
(video, class). Blocks before the first prompt-generation layer do not depend on the video, so they run
once for all classes and the rest runs batched over videos: no Python loop over the batch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip.model import TextTransformer
from tcvideo.clip.layers import MLP, LayerNorm, MultiHeadAttention
from tcvideo.clip.tokenizer import get_tokenizer

Array = jax.Array
Dtype = Any


def ctx_init_vectors(token_embedding: np.ndarray, ctx_init: str, n_ctx: int,
                     rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Initial context vectors [n_ctx, D] from the token embeddings of ``ctx_init`` ('a photo of a').

    Missing vectors (n_ctx longer than the phrase) are drawn N(0, 0.02), as in the reference.
    """
    words = ctx_init.replace("_", " ")
    ids = get_tokenizer().encode(words)[:n_ctx]
    vecs = np.asarray(token_embedding)[ids]
    if len(ids) < n_ctx:
        rng = rng or np.random.default_rng(0)
        extra = rng.normal(0, 0.02, size=(n_ctx - len(ids), vecs.shape[1])).astype(vecs.dtype)
        vecs = np.concatenate([vecs, extra], 0)
    return vecs


class PromptGenerationLayer(nn.Module):
    """ctx = ctx + MHA(ln_1(ctx), ln_1_kv(C)); ctx = ctx + mlp(ln_2(ctx)).

    ctx [B, Q, D] (all classes' prompt vectors of a video flattened into Q queries), C [B, k, D].
    """

    width: int
    num_heads: int
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, ctx: Array, context: Array) -> Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        kv = LayerNorm(name="ln_1_kv", **kw)(context)
        ctx = ctx + MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(
            LayerNorm(name="ln_1", **kw)(ctx), kv=kv)
        return ctx + MLP(self.width, name="mlp", **kw)(LayerNorm(name="ln_2", **kw)(ctx))


class PromptedTextEncoder(TextTransformer):
    """CLIP text tower with learnable prompt vectors and optional video-conditional prompting.

    ``__call__(ids [C, L], context: list of [B, k, E] or None)`` -> text features [B or 1, C, E]
    (unnormalised). ``n_ctx = 0`` gives plain CLIP prompts (vanilla CLIP / ViFi-CLIP). The tower's
    parameters are CLIP's own (``TextTransformer``), plus ``ctx`` and ``prompt_generation_j``.
    """

    n_ctx: int = 4
    prompt_levels: tuple[int, ...] = ()   # 1-based text block indices (before which VP runs)
    stop_gradient_context: bool = True

    def setup(self):
        super().setup()
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.n_ctx:
            self.ctx = self.param("ctx", nn.initializers.normal(0.02), (self.n_ctx, c.text_width),
                                  self.param_dtype)
        for lvl in self.prompt_levels:
            if not 1 <= lvl <= c.text_layers:
                raise ValueError(f"prompt_generation_layer_level {lvl} outside 1..{c.text_layers}")
        if self.prompt_levels and not self.n_ctx:
            raise ValueError("video-conditional prompting needs n_ctx > 0 learnable prompt vectors")
        self.prompt_generation = [PromptGenerationLayer(c.text_width, c.text_heads, name=f"prompt_generation_{j}",
                                                        **kw) for j in range(len(self.prompt_levels))]

    def prompt_embeddings(self, ids: Array) -> Array:
        """ids [C, L] -> [C, L, D]: token embeddings with the n_ctx slots after SOT replaced by ctx."""
        emb = self.token_embedding(ids)
        dt = self.dtype or emb.dtype
        emb = jax.lax.stop_gradient(emb.astype(dt))  # token embeddings are buffers in the reference
        if not self.n_ctx:
            return emb
        ctx = jnp.broadcast_to(self.ctx.astype(dt), (ids.shape[0], self.n_ctx, emb.shape[-1]))
        return jnp.concatenate([emb[:, :1], ctx, emb[:, 1 + self.n_ctx:]], axis=1)

    def __call__(self, ids: Array, context: Optional[Sequence[Array]] = None) -> Array:
        x = self.prompt_embeddings(ids)
        x = (x + self.positional_embedding[: x.shape[1]].astype(x.dtype))[None]  # [1, C, L, D]
        levels = {lvl - 1: j for j, lvl in enumerate(self.prompt_levels)}
        if levels and context is None:
            raise ValueError("this text encoder does video-conditional prompting: pass the context tokens")
        for i, block in enumerate(self.resblocks):
            if i in levels:
                x = self.condition(x, context[levels[i]], levels[i])
            b, cn, l, d = x.shape
            x = block(x.reshape(b * cn, l, d)).reshape(b, cn, l, d)
        return self.pool_and_project(x, ids)

    def condition(self, x: Array, context: Array, j: int) -> Array:
        """Replace the prompt vectors of x [B', C, L, D] by their video-conditioned version -> [B, C, L, D]."""
        if self.stop_gradient_context:
            context = jax.lax.stop_gradient(context)
        b = context.shape[0]
        _, c, l, d = x.shape
        x = jnp.broadcast_to(x, (b, c, l, d))
        ctx = x[:, :, 1:1 + self.n_ctx].reshape(b, c * self.n_ctx, d)
        ctx = self.prompt_generation[j](ctx, context.astype(x.dtype)).reshape(b, c, self.n_ctx, d)
        return jnp.concatenate([x[:, :, :1], ctx, x[:, :, 1 + self.n_ctx:]], axis=2)
