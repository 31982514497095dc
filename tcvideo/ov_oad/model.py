"""OV-OAD (open-vocabulary online action detection, NeurIPS 2024) in Flax Linen.

Input: a window of W per-frame CLIP features [B, W, D] (pre-projection CLS, D = 768 for ViT-B/16);
the last frame is the "current" one. Three stages (see tcvideo/ov_oad/README.md):

1. Distant / neighbouring-frame block: ``dntr_layers`` pre-norm causal self-attention blocks over all
   W frames, then a post-norm cross-attention block whose queries are the last ``num_neighbour``
   frames (V_N) and keys/values the first W - N (V_P). The last token through ``ln_current`` is the
   current-frame feature ``enc_feat`` [B, D]. All W tokens go on.
2. Action clustering: ``num_group_tokens`` learnable group tokens + W frames through
   ``cluster_layers`` unmasked blocks, then a GroupViT-style grouping block: token-mixing MLP
   (G -> num_output_groups over the group axis), cross-attention of the groups to the frames, and an
   assignment attention (softmax over the GROUP axis; Gumbel-softmax + hard one-hot with
   straight-through gradient in training, hard argmax at eval).
3. ``out_layers`` blocks over the output groups, final LayerNorm; video feature = mean of groups.

Heads: image / text projectors (Linear -> LN -> GELU -> Linear), a CLIP text transformer without its
projection (optionally with parallel adapters), a saliency projector (D -> text width), two logit
scales. Optionally a frozen plain-CLIP zero-shot branch (visual projection + CLIP text tower with
projection) used only by the released score fusion.

Paper / released-code variants are config fields (``OVOADConfig``): ``dntr_mode`` ('paper': 4 decoder
layers whose queries are the neighbouring frames, causal among themselves, with the distant past as
memory, instead of the released 4 causal encoder blocks + 1 cross-attention block), ``mask_mode`` ('released':
q k^T statistics; 'paper': M_B = A . G . T^T), ``score_fusion`` ('released': mean of the AC, current
and zero-shot scores; 'paper': P_AC + alpha * P_current; 'ac': P_AC only).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from tcvideo.clip.model import DictConfig, TextTransformer, get_config as get_clip_config
from tcvideo.clip.layers import MLP, LayerNorm, MultiHeadAttention

Array = jax.Array
Dtype = Any

SCORE_FUSIONS = ("released", "paper", "ac")
DNTR_MODES = ("released", "paper")
MASK_MODES = ("released", "paper")
LOGIT_SCALE_MAX = 100.0


@dataclasses.dataclass(frozen=True)
class OVOADConfig(DictConfig):
    """Architecture of OV-OAD. Defaults = the released model (ViT-B/16 features, 32-frame window)."""

    feature_dim: int = 768
    window: int = 32
    num_neighbour: int = 8
    num_heads: int = 8
    mlp_ratio: int = 4
    dntr_layers: int = 4
    dntr_mode: str = "released"  # released: causal encoder stack + cross-attn block; paper: decoder layers
    cluster_layers: int = 6
    num_group_tokens: int = 8
    num_output_groups: int = 2
    group_mlp_hidden: int = 384
    out_layers: int = 2
    proj_dim: int = 256
    proj_hidden: int = 4096
    dropout: float = 0.1
    drop_path: float = 0.1
    adapters: bool = False  # parallel adapters in every visual and text block
    adapter_dim: int = 128
    adapter_scale: float = 0.1
    gumbel_tau: float = 1.0
    text: Any = "ViT-B/16"  # CLIP preset name / CLIPConfig / dict: the text tower (12 x 512, 8 heads)
    zero_shot_clip: bool = True  # frozen plain-CLIP branch (only for score_fusion='released')
    mask_mode: str = "released"
    score_fusion: str = "released"
    alpha: float = 0.1  # paper fusion weight of the current-frame score (and L_current weight)
    top_k: int = 5  # classes kept per window by the pooled embedding before the group softmax

    def __post_init__(self):
        object.__setattr__(self, "text", get_clip_config(self.text))
        if self.feature_dim % self.num_heads:
            raise ValueError(f"OVOADConfig.feature_dim={self.feature_dim} not divisible by num_heads={self.num_heads}")
        if self.dntr_mode not in DNTR_MODES:
            raise ValueError(f"OVOADConfig.dntr_mode={self.dntr_mode!r} not in {DNTR_MODES}")
        if not 0 < self.num_neighbour < self.window:
            raise ValueError(f"OVOADConfig.num_neighbour={self.num_neighbour} must be in (0, window={self.window})")
        if self.score_fusion not in SCORE_FUSIONS:
            raise ValueError(f"OVOADConfig.score_fusion={self.score_fusion!r} not in {SCORE_FUSIONS}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"OVOADConfig.mask_mode={self.mask_mode!r} not in {MASK_MODES}")
        if self.num_output_groups < 1 or self.num_group_tokens < 1:
            raise ValueError("OVOADConfig.num_group_tokens / num_output_groups must be >= 1")

    @property
    def num_blocks(self) -> int:
        return self.dntr_layers + int(self.dntr_mode == "released") + self.cluster_layers + 1 + self.out_layers



# ----------------------------------------------------------------------------- building blocks

class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample with probability ``rate``."""

    rate: float

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear. [..., D] -> [..., out or D]."""

    hidden: int
    out: Optional[int] = None
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x), approximate=False)
        return nn.Dense(self.out or x.shape[-1], dtype=self.dtype, name="fc2")(h)


class Adapter(nn.Module):
    """Parallel adapter: scale * up(ReLU(down(x))), up-projection zero-initialised (starts as identity)."""

    hidden: int
    scale: float
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="down")(x))
        up = nn.Dense(x.shape[-1], dtype=self.dtype, kernel_init=nn.initializers.zeros, name="up")(h)
        return self.scale * up


class Block(nn.Module):
    """Pre-norm transformer block: x + dp(attn(ln_1 x)); x + dp(mlp(ln_2 x) [+ adapter(ln_2 x)]).

    ``clip_mlp``: CLIP's QuickGELU MLP with CLIP parameter names (text tower); else a GELU MLP.
    x [B, N, D] -> [B, N, D]; ``causal``: token i attends only to tokens j <= i.
    """

    width: int
    num_heads: int
    mlp_ratio: int = 4
    causal: bool = False
    drop_path: float = 0.0
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    clip_mlp: bool = False
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        dp = DropPath(self.drop_path)
        x = x + dp(MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(
            LayerNorm(name="ln_1", **kw)(x), is_causal=self.causal), deterministic)
        h = LayerNorm(name="ln_2", **kw)(x)
        if self.clip_mlp:
            y = MLP(self.width, self.mlp_ratio, name="mlp", **kw)(h)
        else:
            y = FeedForward(self.width * self.mlp_ratio, name="mlp", **kw)(h)
        if self.adapter_dim:
            y = y + Adapter(self.adapter_dim, self.adapter_scale, name="adapter", **kw)(h)
        return x + dp(y, deterministic)


class DecoderBlock(nn.Module):
    """Pre-norm transformer decoder layer (paper variant of the DNTR block): causal self-attention over the
    queries, cross-attention to the memory, MLP. q [B, Nq, D], memory [B, Nk, D] -> [B, Nq, D]."""

    width: int
    num_heads: int
    mlp_ratio: int = 4
    causal: bool = True
    drop_path: float = 0.0
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, q: Array, memory: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        dp = DropPath(self.drop_path)
        q = q + dp(MultiHeadAttention(self.width, self.num_heads, name="self_attn", **kw)(
            LayerNorm(name="ln_1", **kw)(q), is_causal=self.causal), deterministic)
        q = q + dp(MultiHeadAttention(self.width, self.num_heads, name="cross_attn", **kw)(
            LayerNorm(name="ln_2", **kw)(q), kv=LayerNorm(name="ln_memory", **kw)(memory)), deterministic)
        h = LayerNorm(name="ln_3", **kw)(q)
        y = FeedForward(self.width * self.mlp_ratio, name="mlp", **kw)(h)
        if self.adapter_dim:
            y = y + Adapter(self.adapter_dim, self.adapter_scale, name="adapter", **kw)(h)
        return q + dp(y, deterministic)


class PostNormCrossBlock(nn.Module):
    """Post-norm cross-attention: q = ln_1(q + attn(q, kv)); q = ln_2(q + mlp(q)). q [B, Nq, D], kv [B, Nk, D]."""

    width: int
    num_heads: int
    mlp_ratio: int = 4
    drop_path: float = 0.0
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, q: Array, kv: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        dp = DropPath(self.drop_path)
        q = LayerNorm(name="ln_1", **kw)(q + dp(MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(
            q, kv=kv), deterministic))
        y = FeedForward(self.width * self.mlp_ratio, name="mlp", **kw)(q)
        if self.adapter_dim:
            y = y + Adapter(self.adapter_dim, self.adapter_scale, name="adapter", **kw)(q)
        return LayerNorm(name="ln_2", **kw)(q + dp(y, deterministic))


def gumbel_hard_assignment(logits: Array, axis: int, rng: Optional[Array], tau: float = 1.0) -> tuple[Array, Array]:
    """Hard one-hot along ``axis`` with a straight-through gradient. -> (hard, soft), same shape as logits.

    With ``rng``: Gumbel-softmax (noise, temperature ``tau``); without: plain softmax, argmax (eval).
    ``hard`` has the values of the one-hot and the gradient of ``soft``.
    """
    x = logits.astype(jnp.float32)
    if rng is not None:
        u = jax.random.uniform(rng, x.shape, jnp.float32, minval=1e-10, maxval=1.0)
        x = (x - jnp.log(-jnp.log(u))) / tau
    soft = jax.nn.softmax(x, axis=axis)
    one_hot = jax.nn.one_hot(jnp.argmax(soft, axis=axis), soft.shape[axis], axis=axis, dtype=soft.dtype)
    hard = one_hot - jax.lax.stop_gradient(soft) + soft
    return hard.astype(logits.dtype), soft.astype(logits.dtype)


class GroupingBlock(nn.Module):
    """GroupViT-style grouping of W frames into ``num_output_groups`` tokens.

    frames [B, W, D], groups [B, G, D] -> dict(groups [B, G', D], hard/soft assignment [B, G', W],
    q [B, G', D], k [B, W, D]) (q/k of the assignment attention, for the background mask).
    """

    width: int
    num_heads: int
    num_output_groups: int
    group_mlp_hidden: int
    mlp_ratio: int = 4
    gumbel_tau: float = 1.0
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, frames: Array, groups: Array, deterministic: bool = True) -> dict:
        kw = dict(dtype=self.dtype)
        x = LayerNorm(name="norm_x", **kw)(frames)
        g = LayerNorm(name="norm_tokens", **kw)(groups)
        # Token mixing over the group axis: [B, G, D] -> [B, D, G] -> MLP -> [B, D, G'] -> [B, G', D].
        g = FeedForward(self.group_mlp_hidden, self.num_output_groups, name="mlp_inter", **kw)(
            g.swapaxes(1, 2)).swapaxes(1, 2)
        g = LayerNorm(name="norm_post_tokens", **kw)(g)
        g = PostNormCrossBlock(self.width, self.num_heads, self.mlp_ratio, adapter_dim=self.adapter_dim,
                               adapter_scale=self.adapter_scale, name="pre_assign_attn", **kw)(g, x, deterministic)
        # Assignment attention: one head, qkv bias; softmax over the GROUP axis (each frame -> one group).
        q = nn.Dense(self.width, name="assign_q", **kw)(g)
        k = nn.Dense(self.width, name="assign_k", **kw)(x)
        v = nn.Dense(self.width, name="assign_v", **kw)(x)
        raw = jnp.einsum("bgd,bwd->bgw", q, k) * (self.width ** -0.5)
        rng = None if deterministic else self.make_rng("gumbel")
        hard, soft = gumbel_hard_assignment(raw, axis=1, rng=rng, tau=self.gumbel_tau)
        attn = hard / (hard.sum(-1, keepdims=True) + 1.0)
        out = nn.Dense(self.width, name="assign_proj", **kw)(jnp.einsum("bgw,bwd->bgd", attn, v))
        g = g + out
        h = LayerNorm(name="norm_new_x", **kw)(g)
        y = FeedForward(self.width * self.mlp_ratio, name="mlp_channels", **kw)(h)
        if self.adapter_dim:
            y = y + Adapter(self.adapter_dim, self.adapter_scale, name="adapter", **kw)(h)
        return {"groups": g + y, "hard": hard, "soft": soft, "q": q, "k": k}


class Projector(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear. [..., Din] -> [..., out]."""

    hidden: int
    out: int
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = LayerNorm(name="ln", dtype=self.dtype)(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x))
        return nn.Dense(self.out, dtype=self.dtype, name="fc2")(nn.gelu(h, approximate=False))


class AdapterTextTransformer(TextTransformer):
    """CLIP's text tower (same parameter names) whose blocks may carry parallel adapters.

    ``encode(ids [..., L]) -> [..., width]``: ln_final at the EOT token, WITHOUT the text projection.
    """

    adapter_dim: int = 0
    adapter_scale: float = 0.1

    def setup(self):
        c = self.config
        self.token_embedding = nn.Embed(c.vocab_size, c.text_width, param_dtype=self.param_dtype,
                                        embedding_init=nn.initializers.normal(0.02))
        self.positional_embedding = self.param("positional_embedding", nn.initializers.normal(0.01),
                                               (c.context_length, c.text_width), self.param_dtype)
        self.resblocks = [Block(c.text_width, c.text_heads, causal=True, clip_mlp=True, adapter_dim=self.adapter_dim,
                                adapter_scale=self.adapter_scale, dtype=self.dtype, name=f"resblocks_{i}")
                          for i in range(c.text_layers)]
        self.ln_final = LayerNorm(dtype=self.dtype)
        self.text_projection = self.param("text_projection", nn.initializers.normal(c.text_width ** -0.5),
                                          (c.text_width, c.embed_dim), self.param_dtype)

    def encode(self, ids: Array) -> Array:
        lead = ids.shape[:-1]
        flat = ids.reshape(-1, ids.shape[-1])
        x = self.embed_tokens(flat)
        x = x + self.positional_embedding[: x.shape[1]].astype(x.dtype)
        for block in self.resblocks:
            x = block(x)
        eot = jnp.argmax(flat, axis=-1)
        pooled = self.ln_final(jnp.take_along_axis(x, eot[:, None, None], axis=1)[:, 0])
        return pooled.reshape(*lead, -1)


def l2n(x: Array, axis: int = -1, eps: float = 1e-6) -> Array:
    x32 = x.astype(jnp.float32)
    return (x32 / jnp.maximum(jnp.linalg.norm(x32, axis=axis, keepdims=True), eps)).astype(x.dtype)


# ----------------------------------------------------------------------------- the model

class OVOAD(nn.Module):
    """OV-OAD. Methods (call with ``model.apply(..., method=...)``):

    * ``encode_video(features [B, W, D], deterministic)`` -> dict(enc_feat [B, D], groups [B, G', D],
      video [B, D], hard/soft [B, G', W], q [B, G', D], k [B, W, D]); training needs rngs
      'dropout' and 'gumbel'.
    * ``encode_text(ids [..., L])`` -> un-projected text features [..., text_width].
    * ``vocabulary(ids [C, L])`` -> the class embeddings every score needs (text only: swap freely).
    * ``scores(features [B, W, D], vocab)`` -> per-class scores [B, C] of the LAST frame.
    """

    config: OVOADConfig
    dtype: Optional[Dtype] = None

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype)
        d = c.feature_dim
        ad = c.adapter_dim if c.adapters else 0
        rates = [c.drop_path * i / max(c.num_blocks - 1, 1) for i in range(c.num_blocks)]
        self.pos_embed = self.param("pos_embed", nn.initializers.truncated_normal(0.02), (1, c.window, d))
        self.pos_drop = nn.Dropout(c.dropout)
        dntr_block = Block if c.dntr_mode == "released" else DecoderBlock
        self.dntr = [dntr_block(d, c.num_heads, c.mlp_ratio, causal=True, drop_path=rates[i], adapter_dim=ad,
                                adapter_scale=c.adapter_scale, name=f"dntr_{i}", **kw) for i in range(c.dntr_layers)]
        r = c.dntr_layers
        if c.dntr_mode == "released":
            self.dntr_cross = PostNormCrossBlock(d, c.num_heads, c.mlp_ratio, drop_path=rates[r], adapter_dim=ad,
                                                 adapter_scale=c.adapter_scale, name="dntr_cross", **kw)
            r += 1
        self.ln_current = LayerNorm(name="ln_current", **kw)
        self.group_token = self.param("group_token", nn.initializers.truncated_normal(0.02),
                                      (1, c.num_group_tokens, d))
        self.cluster = [Block(d, c.num_heads, c.mlp_ratio, drop_path=rates[r + i], adapter_dim=ad,
                              adapter_scale=c.adapter_scale, name=f"cluster_{i}", **kw)
                        for i in range(c.cluster_layers)]
        r += c.cluster_layers + 1
        self.grouping = GroupingBlock(d, c.num_heads, c.num_output_groups, c.group_mlp_hidden, c.mlp_ratio,
                                      c.gumbel_tau, ad, c.adapter_scale, name="grouping", **kw)
        self.out_blocks = [Block(d, c.num_heads, c.mlp_ratio, drop_path=rates[r + i], adapter_dim=ad,
                                 adapter_scale=c.adapter_scale, name=f"out_{i}", **kw) for i in range(c.out_layers)]
        self.ln_out = LayerNorm(name="ln_out", **kw)
        t = c.text
        self.img_projector = Projector(c.proj_hidden, c.proj_dim, name="img_projector", **kw)
        self.text_projector = Projector(c.proj_hidden, c.proj_dim, name="text_projector", **kw)
        self.text = AdapterTextTransformer(t, dtype=self.dtype, adapter_dim=c.adapter_dim if c.adapters else 0,
                                           adapter_scale=c.adapter_scale, name="text")
        self.saliency_projector = self.param("saliency_projector", nn.initializers.normal(d ** -0.5), (d, t.text_width))
        init_scale = lambda *_: jnp.asarray(math.log(1 / 0.07), jnp.float32)
        self.logit_scale = self.param("logit_scale", init_scale)
        self.multi_label_logit_scale = self.param("multi_label_logit_scale", init_scale)
        if c.zero_shot_clip:
            # Frozen plain CLIP (param_label 'frozen'): CLIP's visual projection and text tower with projection.
            self.zs_visual_proj = self.param("zs_visual_proj", nn.initializers.normal(d ** -0.5), (d, t.embed_dim))
            self.zs_text = TextTransformer(t, dtype=self.dtype, name="zs_text")

    # -- scales
    def scale(self) -> Array:
        return jnp.minimum(jnp.exp(self.logit_scale), LOGIT_SCALE_MAX)

    def multi_label_scale(self) -> Array:
        return jnp.minimum(jnp.exp(self.multi_label_logit_scale), LOGIT_SCALE_MAX)

    # -- video
    def encode_video(self, features: Array, deterministic: bool = True) -> dict:
        c = self.config
        if features.shape[1:] != (c.window, c.feature_dim):
            raise ValueError(f"OV-OAD expects features [B, {c.window}, {c.feature_dim}], got {features.shape}")
        x = features.astype(self.dtype or features.dtype) + self.pos_embed.astype(self.dtype or features.dtype)
        x = self.pos_drop(x, deterministic=deterministic)
        n = c.num_neighbour
        if c.dntr_mode == "released":
            for blk in self.dntr:
                x = blk(x, deterministic)
            neigh = self.dntr_cross(x[:, -n:], x[:, :-n], deterministic)  # V_N attends to V_P (all in the past)
        else:  # paper: decoder layers, queries V_N (causal among themselves), memory V_P
            neigh = x[:, -n:]
            for blk in self.dntr:
                neigh = blk(neigh, x[:, :-n], deterministic)
        x = jnp.concatenate([x[:, :-n], neigh], axis=1)
        enc_feat = self.ln_current(x[:, -1])
        g = jnp.broadcast_to(self.group_token.astype(x.dtype), (x.shape[0],) + self.group_token.shape[1:])
        h = jnp.concatenate([x, g], axis=1)
        for blk in self.cluster:
            h = blk(h, deterministic)
        out = self.grouping(h[:, :c.window], h[:, c.window:], deterministic)
        groups = out["groups"]
        for blk in self.out_blocks:
            groups = blk(groups, deterministic)
        groups = self.ln_out(groups)
        return {"enc_feat": enc_feat, "groups": groups, "video": groups.mean(1), "hard": out["hard"],
                "soft": out["soft"], "q": out["q"], "k": out["k"]}

    # -- text
    def encode_text(self, ids: Array) -> Array:
        return self.text.encode(ids)

    def project_video(self, x: Array) -> Array:
        return self.img_projector(x)

    def project_text(self, x: Array) -> Array:
        return self.text_projector(x)

    def saliency(self, enc_feat: Array) -> Array:
        return enc_feat @ self.saliency_projector.astype(enc_feat.dtype)

    def vocabulary(self, ids: Array) -> dict:
        """Class prompts ids [C, L] -> dict(proj [C, P], text [C, Tw], zs [C, E] if zero_shot_clip), L2-normalised."""
        t = self.encode_text(ids)
        voc = {"proj": l2n(self.project_text(t)), "text": l2n(t)}
        if self.config.zero_shot_clip:
            voc["zs"] = l2n(self.zs_text(ids))
        return voc

    # -- scores
    def scores(self, features: Array, vocab: Mapping[str, Array]) -> Array:
        """Class scores [B, C] of the last frame of each window features [B, W, D] (eval mode)."""
        c = self.config
        out = self.encode_video(features, deterministic=True)
        s = self.scale().astype(jnp.float32)
        proj = vocab["proj"].astype(jnp.float32)
        groups = l2n(self.project_video(out["groups"])).astype(jnp.float32)  # [B, G', P]
        pooled = l2n(self.project_video(out["video"])).astype(jnp.float32)  # [B, P]
        affinity = s * jnp.einsum("bgp,cp->bgc", groups, proj)
        pooled_prob = jax.nn.softmax(s * pooled @ proj.T, axis=-1)  # [B, C]
        k = min(c.top_k, proj.shape[0])
        kth = jax.lax.top_k(pooled_prob, k)[0][:, -1:]
        keep = pooled_prob >= kth  # top-k classes of the window (ties keep more)
        affinity = jnp.where(keep[:, None, :], affinity, -jnp.inf)
        affinity = jax.nn.softmax(affinity, axis=-1)  # [B, G', C]
        assign = out["hard"][:, :, -1].astype(jnp.float32)  # [B, G'] one-hot group of the last frame
        p_ac = jax.nn.softmax(jnp.einsum("bg,bgc->bc", assign, affinity), axis=-1)
        cur = l2n(self.saliency(out["enc_feat"])).astype(jnp.float32)
        p_cur = jax.nn.softmax(s * cur @ vocab["text"].astype(jnp.float32).T, axis=-1)
        if c.score_fusion == "ac":
            return p_ac
        if c.score_fusion == "paper":
            return p_ac + c.alpha * p_cur
        parts = [p_ac, p_cur]
        if c.zero_shot_clip:
            last = l2n(features[:, -1].astype(jnp.float32) @ self.zs_visual_proj.astype(jnp.float32))
            parts.append(jax.nn.softmax(LOGIT_SCALE_MAX * last @ vocab["zs"].astype(jnp.float32).T, axis=-1))
        return sum(parts) / len(parts)

    def __call__(self, features: Array, ids: Array, deterministic: bool = True) -> dict:
        """Everything (used for init): encode_video outputs + vocabulary of ids [C, L] + scores [B, C]."""
        out = self.encode_video(features, deterministic)
        voc = self.vocabulary(ids)
        out["proj_video"] = self.project_video(out["video"])
        out["saliency"] = self.saliency(out["enc_feat"])
        out["scores"] = self.scores(features, voc)
        return out


def init_params(config: OVOADConfig, rng: Optional[Array] = None, context_length: int = 77) -> dict:
    """Random float32 parameters (CLIP weights, when used, are loaded on top by the task)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    model = OVOAD(config)
    feats = jnp.zeros((1, config.window, config.feature_dim), jnp.float32)
    ids = jnp.zeros((2, context_length), jnp.int32).at[:, 1].set(1)
    return jax.jit(model.init)(rng, feats, ids)["params"]


def mask_prediction(q: Array, k: Array) -> Array:
    """Released background-mask prediction: mean over groups of q k^T / sqrt(D) [B, W], L2-normalised
    over frames, then min-max scaled to [0, 1]. q [B, G, D], k [B, W, D]."""
    pred = (jnp.einsum("bgd,bwd->bgw", q, k) / math.sqrt(q.shape[-1])).mean(1).astype(jnp.float32)
    pred = l2n(pred)
    lo, hi = pred.min(-1, keepdims=True), pred.max(-1, keepdims=True)
    return (pred - lo) / jnp.maximum(hi - lo, 1e-6)


def paper_mask_prediction(soft: Array, groups_proj: Array, text_proj: Array) -> Array:
    """Paper eq. (1): M_B = A . G . T^T with A [B, G, W] (soft assignment), G [B, G, P] and T [B, P]
    (the window's caption), squashed to [0, 1] by a sigmoid. -> [B, W]."""
    m = jnp.einsum("bgw,bgp,bp->bw", soft.astype(jnp.float32), l2n(groups_proj).astype(jnp.float32),
                   l2n(text_proj).astype(jnp.float32))
    return jax.nn.sigmoid(m)
