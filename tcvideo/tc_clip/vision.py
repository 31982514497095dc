"""Temporal-contextualization (TC) vision encoder of TC-CLIP.

Every frame is encoded by CLIP's ViT, but from layer 1 on each frame's attention also sees k
*context tokens* summarising the whole video. Per layer (spec: tc_clip.md, "Vision forward"):

  1. queries from the frame tokens [B*T, N, D]; keys/values = own frame tokens + the previous
     layer's context tokens (shared by all frames of a video), plus a learned per-head bias on the
     local and on the context columns;
  2. the previous context tokens are dropped after attention;
  3. seeds = per-frame top-s patches by head-mean CLS attention, taken from the post-attention
     frame tokens, frame-major, descending score (ranks and a one-hot matmul: no sort, no gather);
  4. seeds are summarised to k new context tokens (``context_summary``);
  5. frame and context tokens go through the block's (shared) ln_2 + MLP.

Parameter names match tcvideo's CLIP vision tower (plus ``attn/local_global_bias``), so CLIP
weights load directly and weight ensembles mix the same tree.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tcvideo.tc_clip import context_summary as cs
from tcvideo.clip.model import CLIPConfig, VisionEmbedding
from tcvideo.clip.layers import MLP, LayerNorm, MultiHeadAttention, attention, attention_probs, merge_heads, split_heads

Array = jax.Array
Dtype = Any


@dataclasses.dataclass(frozen=True)
class TCVisionConfig:
    """TC settings. ``tc_layers`` None means every layer >= 1 attends to context tokens."""

    num_frames: int = 16
    context_tokens: int = 96          # k, for the whole video
    seed_ratio: float = 0.3           # alpha: seeds per frame = int(num_patches * alpha)
    tome_r: int = 100                 # bipartite merges per step
    context_summary: str = "bipartite"
    local_global_bias: bool = True
    positional_embedding_type: str = "space"
    tc_layers: Optional[tuple[int, ...]] = None
    context_layers: tuple[int, ...] = ()  # layers whose context tokens are returned (for VP)
    output_layer: int = -1                # layer whose CLS tokens form the video embedding

    def injecting_layers(self, depth: int) -> tuple[int, ...]:
        layers = tuple(range(1, depth)) if self.tc_layers is None else tuple(sorted(self.tc_layers))
        bad = [l for l in layers if not 1 <= l < depth]
        if bad:
            raise ValueError(f"tc_layers {bad} out of range: context can be injected in layers 1..{depth - 1}")
        return layers

    def making_layers(self, depth: int) -> tuple[int, ...]:
        """Layers that must produce context tokens (for the next layer or as an output)."""
        made = {l - 1 for l in self.injecting_layers(depth)} | set(self.context_layers)
        return tuple(sorted(made))

    def seeds_per_frame(self, num_patches: int) -> int:
        return int(num_patches * self.seed_ratio)


class TCAttention(MultiHeadAttention):
    """Multi-head attention of one TC block, same parameters as CLIP's plus the context bias.

    x [B, T*N, D] (ln_1 applied) and optional context [B, k, D] (ln_1 applied) ->
    (attn_out [B, T*N, D], cls_scores [B, T, N-1]); ``cls_scores`` is the head-mean post-softmax
    attention of each frame's CLS query over its own patch columns (context columns included in
    the softmax, as in the reference).
    """

    num_frames: int = 1
    with_context_bias: bool = False

    def setup(self):
        super().setup()
        if self.with_context_bias:
            # [heads, (local, context)]; the official table is [heads, 1, 2].
            self.local_global_bias = self.param("local_global_bias", nn.initializers.truncated_normal(0.02),
                                                (self.num_heads, 2), self.param_dtype)

    def __call__(self, x: Array, context: Optional[Array] = None) -> tuple[Array, Array]:
        b, tn, d = x.shape
        t, h = self.num_frames, self.num_heads
        n = tn // t
        q, k, v = (split_heads(z.reshape(b * t, n, d), h) for z in self.project_qkv(x))
        bias = None
        if context is not None:
            kc, vc = self.project_kv(context)  # [B, k, D], once per video
            m = context.shape[1]
            rep = lambda z: split_heads(jnp.repeat(z, t, axis=0), h)  # same context for every frame
            k = jnp.concatenate([k, rep(kc)], axis=1)
            v = jnp.concatenate([v, rep(vc)], axis=1)
            if self.with_context_bias:
                lgb = self.local_global_bias  # broadcast, not indexed: its gradient is a sum, not a scatter
                bias = jnp.concatenate([jnp.broadcast_to(lgb[:, :1], (h, n)), jnp.broadcast_to(lgb[:, 1:], (h, m))],
                                       axis=1)[None, :, None, :]  # [1, H, 1, N + k]
        out = attention(q, k, v, bias=bias)
        out = self.out_proj(merge_heads(out)).reshape(b, tn, d)
        # Seed selection needs only the CLS query's row: a [B*T, H, 1, N+k] softmax.
        cls_probs = attention_probs(q[:, :1], k, bias=bias)[:, :, 0, 1:n]  # [B*T, H, N-1]
        return out, cls_probs.mean(axis=1).reshape(b, t, n - 1)


class TCBlock(nn.Module):
    """One TC residual block. x [B, T*N, D], context [B, k, D] or None -> dict of outputs."""

    width: int
    num_heads: int
    num_frames: int
    inject: bool
    make_context: bool
    tc: TCVisionConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, context: Optional[Array]) -> dict:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        ln_1 = LayerNorm(name="ln_1", **kw)
        ctx_in = ln_1(context) if (self.inject and context is not None) else None
        attn_out, cls_scores = TCAttention(
            self.width, self.num_heads, num_frames=self.num_frames,
            with_context_bias=self.inject and self.tc.local_global_bias, name="attn", **kw)(ln_1(x), ctx_in)
        x = x + attn_out  # previous context tokens are not carried on
        out = {"cls_scores": cls_scores}
        ln_2, mlp = LayerNorm(name="ln_2", **kw), MLP(self.width, name="mlp", **kw)
        if self.make_context:
            new_ctx, extras = self.summarize(x, cls_scores)
            out.update(extras)
            out["context_pre_ffn"] = new_ctx
            z = jnp.concatenate([x, new_ctx], axis=1)
            z = z + mlp(ln_2(z))
            x, new_ctx = z[:, :x.shape[1]], z[:, x.shape[1]:]
            out["context"] = new_ctx
        else:
            x = x + mlp(ln_2(x))
        out["x"] = x
        return out

    def summarize(self, x: Array, cls_scores: Array) -> tuple[Array, dict]:
        """Seed selection + summary. x [B, T*N, D], cls_scores [B, T, N-1] -> ([B, k, D], extras)."""
        b, tn, d = x.shape
        t = self.num_frames
        n = tn // t
        s = self.tc.seeds_per_frame(n - 1)
        # The top-s patches of each frame, descending score (ties: lower index), as a one-hot matmul:
        # no sort and no gather, and its gradient is a matmul too (a gather's would be a scatter).
        rank = cs.descending_rank(jax.lax.stop_gradient(cls_scores))  # [B, T, N-1]
        patches = x.reshape(b, t, n, d)[:, :, 1:]
        seeds = cs.select_by_rank(rank, patches, s).reshape(b, t * s, d)
        seed_index = cs.order_from_rank(rank, s)  # [B, T, s]; diagnostics only (unused outputs are pruned)
        method = self.tc.context_summary
        rng = self.make_rng("merge") if (method == "random" and self.has_rng("merge")) else None

        def one(tokens):
            ctx, sizes, plans = cs.summarize(method, tokens, self.tc.context_tokens, self.tc.tome_r, rng)
            return ctx, sizes, plans

        ctx, sizes, plans = jax.vmap(one)(seeds)
        extras = {"seed_index": seed_index, "context_sizes": sizes}
        if plans:
            extras["merge_plans"] = plans
        return ctx, extras


class TCVisionTransformer(nn.Module):
    """video [B, T, H, W, 3] -> dict(cls [B, T, E], context {layer: [B, k, E]}, per-layer diagnostics)."""

    clip: CLIPConfig
    tc: TCVisionConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    remat: bool = False  # recompute each block's activations in the backward pass (same params, same values)

    @nn.compact
    def __call__(self, video: Array, return_diagnostics: bool = False) -> dict:
        c, tc = self.clip, self.tc
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, t = video.shape[:2]
        if t != tc.num_frames:
            raise ValueError(f"TC vision encoder built for num_frames={tc.num_frames}, got a video of {t} frames")
        depth = c.vision_layers
        inject, make = set(tc.injecting_layers(depth)), set(tc.making_layers(depth))
        out_layer = tc.output_layer % depth
        x = VisionEmbedding(c.vision_width, c.patch_size, c.grid_size, tc.positional_embedding_type,
                            tc.num_frames, name="embed", **kw)(video)
        n = x.shape[2]
        x = LayerNorm(name="ln_pre", **kw)(x.reshape(b, t * n, c.vision_width))
        ln_post = LayerNorm(name="ln_post", **kw)
        proj = self.param("proj", nn.initializers.normal(c.vision_width ** -0.5),
                          (c.vision_width, c.embed_dim), self.param_dtype)
        project = lambda z: ln_post(z) @ proj.astype(z.dtype)
        context, result, diag = None, {"context": {}}, []
        last = max([out_layer, *tc.context_layers])
        block = nn.remat(TCBlock) if self.remat else TCBlock
        for i in range(last + 1):
            o = block(c.vision_width, c.vision_heads, tc.num_frames, inject=i in inject,
                        make_context=i in make, tc=tc, name=f"resblocks_{i}", **kw)(x, context)
            x, context = o["x"], o.get("context")
            if i == out_layer:
                result["cls"] = project(x.reshape(b, t, n, -1)[:, :, 0])
            if i in tc.context_layers:
                result["context"][i] = project(context)
            if return_diagnostics:
                o = dict(o)
                o["cls_token"] = x.reshape(b, t, n, -1)[:, :, 0]
                o.pop("x")
                diag.append(o)
        if return_diagnostics:
            result["layers"] = diag
        return result


def official_return_layers(vision_layers: int, prompt_levels: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """(CLS output layer, context layers) exactly as the official TC-CLIP code picks them.

    The official model collects layers ``[level - 1 for level in prompt_levels] + [11]`` (ascending,
    those that exist), takes the CLS tokens of the highest one and the context tokens of the first
    ``len(prompt_levels)`` ones. For the released 12-layer models both are the last layer.
    """
    wanted = [lvl - 1 for lvl in prompt_levels]
    if 11 not in wanted:
        wanted.append(11)
    present = sorted(l for l in set(wanted) if 0 <= l < vision_layers)
    if not present:
        raise ValueError(f"no vision layer to read out: prompt levels {list(prompt_levels)} and layer 11 "
                         f"are outside a {vision_layers}-layer encoder")
    return present[-1], tuple(present[: len(prompt_levels)])
