"""OV-OAD (open-vocabulary online action detection, NeurIPS 2024) in Flax Linen.

Input: a window of W per-frame CLIP features [B, W, D] (pre-projection CLS, D = 768 for ViT-B/16);
the last frame is the "current" one. The released model (ZQSIAT/OV-OAD at daebb20,
``models/group_vit_0423.py`` + ``models/multi_label_contrastive.py``; see tcvideo/ov_oad/README.md):

1. Distant / neighbouring-frame block (GroupViT layer 0): ``dntr_layers`` pre-norm CAUSAL
   self-attention blocks over the W frames. On the side, a post-norm cross-attention block
   (``x = q + attn(q, kv); x = x + mlp(ln_2 x); x = ln_post x``) whose queries are the last
   ``num_neighbour`` tokens and keys/values the first W - N gives the current-frame feature
   ``enc_feat = ln_out(cross[:, -1])`` (the SAME final LayerNorm as the groups). The W encoder tokens
   go on to the clustering unchanged (``dntr_write_back`` replaces the last N by the cross output).
2. Action clustering (layer 1): ``num_group_tokens`` learnable group tokens + the W frames through
   ``cluster_layers`` unmasked blocks, then a GroupViT grouping block: token-mixing MLP over the group
   axis (G -> G'), a post-norm cross block of the groups to the frames, and an assignment attention
   (softmax over the GROUP axis; Gumbel-softmax + hard one-hot, straight-through, in training; hard
   argmax at eval; ``attn / (sum + 1)``, attention dropout).
3. ``out_layers`` blocks over the G' groups (layer 2), the final LayerNorm; video = mean of groups.

Dropout as released: ``dropout`` after the positional embedding, in every self-attention block's
MLP and output projection, ``attn_dropout`` on their attention probabilities and on the assignment;
drop-path rising linearly over the self-attention blocks only; the cross / grouping blocks have none.
Adapters (parallel, ReLU bottleneck, scale 0.1, dropout 0.1) read the residual stream after the
attention residual and are added outside drop-path: text adapters (64 wide) in every released
config, visual adapters (``visual_adapter_dim``) only in HEAD's ``tune_config``.

Heads: image / text projectors (Linear -> LN -> GELU -> Linear), a CLIP text tower without its
projection, a saliency projector (D -> text width), two logit scales, and a frozen plain-CLIP zero-shot
branch (visual projection, CLIP text tower, CLIP logit scale) used by the released score fusion.

Paper / released-code variants are config fields (``OVOADConfig``): ``dntr_mode`` ('paper': decoder
layers whose queries are the neighbouring frames), ``dntr_write_back``, ``mask_mode`` ('paper':
M_B = A . G . T^T) and ``score_fusion`` ('released': mean of the AC, current-frame and zero-shot
scores; 'paper': P_AC + alpha * P_current; 'ac': P_AC only).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from tcvideo.clip.model import DictConfig, TextTransformer, get_config as get_clip_config
from tcvideo.clip.layers import MLP, LayerNorm, MultiHeadAttention, attention_probs, merge_heads, split_heads, stats_dtype

Array = jax.Array
Dtype = Any

SCORE_FUSIONS = ("released", "paper", "ac")
DNTR_MODES = ("released", "paper")
MASK_MODES = ("released", "paper")
ZERO_SHOT_POOLS = ("means", "single")
LOGIT_SCALE_MAX = 100.0
_INIT = nn.initializers.truncated_normal(0.02)  # the released _init_weights: Linear trunc_normal(0.02), bias 0


@dataclasses.dataclass(frozen=True)
class OVOADConfig(DictConfig):
    """Architecture of OV-OAD. Defaults = the released model (ViT-B/16 features, 32-frame window,
    daebb20 ``configs/ovoador/test_oad.yml``)."""

    feature_dim: int = 768
    window: int = 32
    num_neighbour: int = 8  # 'short_term_len', hard-coded 8 in the released code
    num_heads: int = 8
    mlp_ratio: int = 4
    dntr_layers: int = 4
    dntr_mode: str = "released"  # released: causal encoder stack + cross block on the side; paper: decoder layers
    dntr_write_back: bool = False  # True: the cross-attended last N tokens replace the encoder's (paper reading)
    cluster_layers: int = 6
    num_group_tokens: int = 8
    num_output_groups: int = 2
    group_mlp_hidden: int = 384  # D / 2
    out_layers: int = 2
    proj_dim: int = 256
    proj_hidden: int = 4096
    dropout: float = 0.1  # drop_rate: after pos_embed, MLPs and attention output projections
    attn_dropout: float = 0.1  # attn_drop_rate: attention probabilities and the assignment
    drop_path: float = 0.1  # linspace(0, drop_path, #self-attention blocks)
    visual_adapter_dim: int = 0  # > 0: parallel adapters in every visual self-attention block (HEAD tune_config: 128)
    text_adapter_dim: int = 64  # parallel adapters in every text block (0: none)
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    gumbel_tau: float = 1.0
    text: Any = "ViT-B/16"  # CLIP preset name / CLIPConfig / dict: the text tower (12 x 512, 8 heads)
    zero_shot_clip: bool = True  # frozen plain-CLIP branch (only for score_fusion='released')
    zero_shot_pool: str = "means"  # plain-CLIP prior: mean over the window (THUMOS eval_type 'means') | 'single'
    mask_mode: str = "released"
    score_fusion: str = "released"
    alpha: float = 0.1  # paper fusion weight of the current-frame score
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
        if self.zero_shot_pool not in ZERO_SHOT_POOLS:
            raise ValueError(f"OVOADConfig.zero_shot_pool={self.zero_shot_pool!r} not in {ZERO_SHOT_POOLS}")
        if self.num_output_groups < 1 or self.num_group_tokens < 1:
            raise ValueError("OVOADConfig.num_group_tokens / num_output_groups must be >= 1")

    @property
    def num_self_attention_blocks(self) -> int:
        """The blocks drop-path rises over (the released 4 + 6 + 2 = 12)."""
        return self.dntr_layers + self.cluster_layers + self.out_layers


# ----------------------------------------------------------------------------- building blocks

def _sd(x: Array) -> Dtype:
    return stats_dtype(x.dtype)


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


def _dense(n: int, name: str, dtype) -> nn.Dense:
    return nn.Dense(n, dtype=dtype, kernel_init=_INIT, name=name)


class FeedForward(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout. [..., D] -> [..., out or D]."""

    hidden: int
    out: Optional[int] = None
    dropout: float = 0.0
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        h = nn.gelu(_dense(self.hidden, "fc1", self.dtype)(x), approximate=False)
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        y = _dense(self.out or x.shape[-1], "fc2", self.dtype)(h)
        return nn.Dropout(self.dropout)(y, deterministic=deterministic)


class Adapter(nn.Module):
    """Parallel adapter: scale * up(dropout(ReLU(down(x)))), up-projection zero-initialised (LoRA init)."""

    hidden: int
    scale: float
    dropout: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="down")(x))
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        up = nn.Dense(x.shape[-1], dtype=self.dtype, kernel_init=nn.initializers.zeros, name="up")(h)
        return self.scale * up


class Attention(nn.Module):
    """Multi-head attention with dropout on the probabilities and the output projection.

    Parameters as ``clip.layers.MultiHeadAttention`` (fused ``in_proj_kernel`` [D, 3D] = q | k | v,
    ``out_proj``). Self-attention when ``kv`` is None. x [B, Nq, D], kv [B, Nk, D] -> [B, Nq, D].
    """

    width: int
    num_heads: int
    attn_dropout: float = 0.0
    proj_dropout: float = 0.0
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, kv: Optional[Array] = None, *, causal: bool = False,
                 deterministic: bool = True) -> Array:
        d, h = self.width, self.num_heads
        w = self.param("in_proj_kernel", _INIT, (d, 3 * d))
        b = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,))
        dt = self.dtype or x.dtype
        w, b = w.astype(dt), b.astype(dt)
        if kv is None:
            qkv = x.astype(dt) @ w + b
            q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        else:
            q = x.astype(dt) @ w[:, :d] + b[:d]
            kvp = kv.astype(dt) @ w[:, d:] + b[d:]
            k, v = kvp[..., :d], kvp[..., d:]
        probs = attention_probs(split_heads(q, h), split_heads(k, h), is_causal=causal).astype(dt)  # [B, H, Nq, Nk]
        probs = nn.Dropout(self.attn_dropout)(probs, deterministic=deterministic)
        out = merge_heads(jnp.einsum("bhqk,bkhd->bqhd", probs, split_heads(v, h)))
        out = _dense(d, "out_proj", self.dtype)(out)
        return nn.Dropout(self.proj_dropout)(out, deterministic=deterministic)


class Block(nn.Module):
    """Pre-norm self-attention block (released ``AttnBlock``), optional parallel adapter:
    x = x + dp(attn(ln_1 x)); x = x + dp(mlp(ln_2 x)) [+ adapter(x)]. x [B, N, D] -> [B, N, D]."""

    width: int
    num_heads: int
    mlp_ratio: int = 4
    causal: bool = False
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        dp = DropPath(self.drop_path)
        x = x + dp(Attention(self.width, self.num_heads, self.attn_dropout, self.dropout, name="attn", **kw)(
            LayerNorm(name="ln_1", **kw)(x), causal=self.causal, deterministic=deterministic), deterministic)
        y = dp(FeedForward(self.width * self.mlp_ratio, dropout=self.dropout, name="mlp", **kw)(
            LayerNorm(name="ln_2", **kw)(x), deterministic), deterministic)
        if self.adapter_dim:  # reads the residual stream, outside drop-path
            y = y + Adapter(self.adapter_dim, self.adapter_scale, self.adapter_dropout, name="adapter", **kw)(
                x, deterministic)
        return x + y


class TextBlock(nn.Module):
    """CLIP residual block (CLIP parameter names) with the released parallel text adapter:
    x = x + attn(ln_1 x); x = x + mlp(ln_2 x) [+ adapter(x)]. x [B, L, W] -> [B, L, W]."""

    width: int
    num_heads: int
    adapter_dim: int = 0
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        x = x + MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(
            LayerNorm(name="ln_1", **kw)(x), is_causal=True)
        y = MLP(self.width, name="mlp", **kw)(LayerNorm(name="ln_2", **kw)(x))
        if self.adapter_dim:
            y = y + Adapter(self.adapter_dim, self.adapter_scale, self.adapter_dropout, name="adapter", **kw)(
                x, deterministic)
        return x + y


class DecoderBlock(nn.Module):
    """Pre-norm transformer decoder layer (paper variant of the DNTR block): causal self-attention over the
    queries, cross-attention to the memory, MLP. q [B, Nq, D], memory [B, Nk, D] -> [B, Nq, D]."""

    width: int
    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, q: Array, memory: Array, deterministic: bool = True) -> Array:
        kw = dict(dtype=self.dtype)
        dp = DropPath(self.drop_path)
        attn = lambda name: Attention(self.width, self.num_heads, self.attn_dropout, self.dropout, name=name, **kw)
        q = q + dp(attn("self_attn")(LayerNorm(name="ln_1", **kw)(q), causal=True, deterministic=deterministic),
                   deterministic)
        q = q + dp(attn("cross_attn")(LayerNorm(name="ln_2", **kw)(q), LayerNorm(name="ln_memory", **kw)(memory),
                                      deterministic=deterministic), deterministic)
        return q + dp(FeedForward(self.width * self.mlp_ratio, dropout=self.dropout, name="mlp", **kw)(
            LayerNorm(name="ln_3", **kw)(q), deterministic), deterministic)


class PostNormCrossBlock(nn.Module):
    """Released ``CrossAttnBlock(post_norm=True)``: x = q + attn(q, kv); x = x + mlp(ln_2 x); ln_post(x).
    No norm on q / kv, no dropout, no drop-path. q [B, Nq, D], kv [B, Nk, D] -> [B, Nq, D]."""

    width: int
    num_heads: int
    mlp_ratio: int = 4
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, q: Array, kv: Array) -> Array:
        kw = dict(dtype=self.dtype)
        x = q + Attention(self.width, self.num_heads, name="attn", **kw)(q, kv)
        x = x + FeedForward(self.width * self.mlp_ratio, name="mlp", **kw)(LayerNorm(name="ln_2", **kw)(x))
        return LayerNorm(name="ln_post", **kw)(x)


def gumbel_hard_assignment(logits: Array, axis: int, noise: Optional[Array] = None, tau: float = 1.0
                           ) -> tuple[Array, Array]:
    """Hard one-hot along ``axis`` with a straight-through gradient -> (hard, soft), shapes of ``logits``.

    ``noise`` (Gumbel(0, 1) samples, same shape): y = softmax((logits + noise) / tau), the training
    assignment; without: y = softmax(logits) (eval). hard = one_hot(argmax y) - stop_gradient(y) + y.
    ``soft`` is always the noise-free softmax (the released ``attn_dict['soft']``).
    """
    x = logits.astype(_sd(logits))
    soft = jax.nn.softmax(x, axis=axis)
    y = soft if noise is None else jax.nn.softmax((x + noise.astype(x.dtype)) / tau, axis=axis)
    one_hot = jax.nn.one_hot(jnp.argmax(y, axis=axis), y.shape[axis], axis=axis, dtype=y.dtype)
    hard = one_hot - jax.lax.stop_gradient(y) + y
    return hard.astype(logits.dtype), soft.astype(logits.dtype)


class GroupingBlock(nn.Module):
    """GroupViT grouping of W frames into ``num_output_groups`` tokens (released ``GroupingBlock``).

    frames [B, W, D], groups [B, G, D] -> dict(groups [B, G', D], hard/soft/logits [B, G', W],
    q [B, G', D], k [B, W, D], and the intermediates named as the fixtures name them).
    """

    width: int
    num_heads: int
    num_output_groups: int
    group_mlp_hidden: int
    mlp_ratio: int = 4
    gumbel_tau: float = 1.0
    attn_dropout: float = 0.0
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, frames: Array, groups: Array, deterministic: bool = True,
                 noise: Optional[Array] = None) -> dict:
        kw = dict(dtype=self.dtype)
        x = LayerNorm(name="norm_x", **kw)(frames)
        g = LayerNorm(name="norm_tokens", **kw)(groups)
        # Token mixing over the group axis: [B, G, D] -> [B, D, G] -> MLP -> [B, D, G'] -> [B, G', D].
        mixed = FeedForward(self.group_mlp_hidden, self.num_output_groups, name="mlp_inter", **kw)(
            g.swapaxes(1, 2)).swapaxes(1, 2)
        projected = LayerNorm(name="norm_post_tokens", **kw)(mixed)
        g = PostNormCrossBlock(self.width, self.num_heads, self.mlp_ratio, name="pre_assign_attn", **kw)(projected, x)
        # Assignment attention: one head, qkv bias; softmax over the GROUP axis (each frame -> one group).
        q = _dense(self.width, "assign_q", self.dtype)(g)
        k = _dense(self.width, "assign_k", self.dtype)(x)
        v = _dense(self.width, "assign_v", self.dtype)(x)
        raw = jnp.einsum("bgd,bwd->bgw", q, k) * (self.width ** -0.5)
        hard, soft = gumbel_hard_assignment(raw, axis=1, noise=noise, tau=self.gumbel_tau)
        attn = hard / (hard.sum(-1, keepdims=True) + 1.0)
        attn = nn.Dropout(self.attn_dropout)(attn, deterministic=deterministic)
        assign_out = _dense(self.width, "assign_proj", self.dtype)(jnp.einsum("bgw,bwd->bgd", attn, v))
        new = assign_out + g
        new = new + FeedForward(self.width * self.mlp_ratio, name="mlp_channels", **kw)(
            LayerNorm(name="norm_new_x", **kw)(new))
        return {"groups": new, "hard": hard, "soft": soft, "logits": raw, "q": q, "k": k, "mixer": mixed,
                "projected": projected, "pre_assign": g, "assign_out": assign_out}


class Projector(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear (released ``ProjectMLP``, 2 layers). [..., Din] -> [..., out]."""

    hidden: int
    out: int
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = LayerNorm(name="ln", dtype=self.dtype)(_dense(self.hidden, "fc1", self.dtype)(x))
        return _dense(self.out, "fc2", self.dtype)(nn.gelu(h, approximate=False))


class AdapterTextTransformer(TextTransformer):
    """CLIP's text tower (same parameter names) with the released parallel adapters in every block.

    ``encode(ids [..., L]) -> [..., width]``: ln_final at the EOT token, WITHOUT the text projection.
    """

    adapter_dim: int = 0
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1

    def setup(self):
        c = self.config
        self.token_embedding = nn.Embed(c.vocab_size, c.text_width, param_dtype=self.param_dtype,
                                        embedding_init=nn.initializers.normal(0.02))
        self.positional_embedding = self.param("positional_embedding", nn.initializers.normal(0.01),
                                               (c.context_length, c.text_width), self.param_dtype)
        self.resblocks = [TextBlock(c.text_width, c.text_heads, self.adapter_dim, self.adapter_scale,
                                    self.adapter_dropout, dtype=self.dtype, name=f"resblocks_{i}")
                          for i in range(c.text_layers)]
        self.ln_final = LayerNorm(dtype=self.dtype)
        self.text_projection = self.param("text_projection", nn.initializers.normal(c.text_width ** -0.5),
                                          (c.text_width, c.embed_dim), self.param_dtype)

    def encode(self, ids: Array, deterministic: bool = True) -> Array:
        lead = ids.shape[:-1]
        flat = ids.reshape(-1, ids.shape[-1])
        x = self.embed_tokens(flat)
        x = x + self.positional_embedding[: x.shape[1]].astype(x.dtype)
        for block in self.resblocks:
            x = block(x, deterministic)
        eot = jnp.argmax(flat, axis=-1)
        pooled = self.ln_final(jnp.take_along_axis(x, eot[:, None, None], axis=1)[:, 0])
        return pooled.reshape(*lead, -1)


def l2n(x: Array, axis: int = -1, eps: float = 1e-12) -> Array:
    """x / max(|x|, eps) (PyTorch's F.normalize), in >= float32."""
    xf = x.astype(_sd(x))
    return (xf / jnp.maximum(jnp.linalg.norm(xf, axis=axis, keepdims=True), eps)).astype(x.dtype)


# ----------------------------------------------------------------------------- the model

class OVOAD(nn.Module):
    """OV-OAD. Methods (call with ``model.apply(..., method=...)``):

    * ``encode_video(features [B, W, D], deterministic, gumbel, gumbel_noise)`` -> dict(enc_feat [B, D],
      groups [B, G', D], video [B, D], hard/soft/logits [B, G', W], q [B, G', D], k [B, W, D], and the
      intermediates); dropout needs rng 'dropout', Gumbel without ``gumbel_noise`` rng 'gumbel'.
    * ``encode_text(ids [..., L])`` -> un-projected text features [..., text_width].
    * ``vocabulary(ids [C, L])`` -> the class embeddings every score needs (text only: swap freely).
    * ``score_parts(features [B, W, D], vocab)`` -> every released score; ``scores`` -> the fused [B, C]
      score of the LAST frame.
    """

    config: OVOADConfig
    dtype: Optional[Dtype] = None

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype)
        d = c.feature_dim
        n = c.num_self_attention_blocks
        rates = [c.drop_path * i / max(n - 1, 1) for i in range(n)]
        common = dict(dropout=c.dropout, attn_dropout=c.attn_dropout, **kw)
        adapt = dict(adapter_dim=c.visual_adapter_dim, adapter_scale=c.adapter_scale,
                     adapter_dropout=c.adapter_dropout)
        self.pos_embed = self.param("pos_embed", _INIT, (1, c.window, d))
        self.pos_drop = nn.Dropout(c.dropout)
        if c.dntr_mode == "released":
            self.dntr = [Block(d, c.num_heads, c.mlp_ratio, causal=True, drop_path=rates[i], name=f"dntr_{i}",
                               **adapt, **common) for i in range(c.dntr_layers)]
            self.dntr_cross = PostNormCrossBlock(d, c.num_heads, c.mlp_ratio, name="dntr_cross", **kw)
        else:
            self.dntr = [DecoderBlock(d, c.num_heads, c.mlp_ratio, drop_path=rates[i], name=f"dntr_{i}", **common)
                         for i in range(c.dntr_layers)]
        r = c.dntr_layers
        self.group_token = self.param("group_token", _INIT, (1, c.num_group_tokens, d))
        self.cluster = [Block(d, c.num_heads, c.mlp_ratio, drop_path=rates[r + i], name=f"cluster_{i}",
                              **adapt, **common) for i in range(c.cluster_layers)]
        r += c.cluster_layers
        self.grouping = GroupingBlock(d, c.num_heads, c.num_output_groups, c.group_mlp_hidden, c.mlp_ratio,
                                      c.gumbel_tau, c.attn_dropout, name="grouping", **kw)
        self.out_blocks = [Block(d, c.num_heads, c.mlp_ratio, drop_path=rates[r + i], name=f"out_{i}",
                                 **adapt, **common) for i in range(c.out_layers)]
        self.ln_out = LayerNorm(name="ln_out", **kw)  # the one final norm: groups AND enc_feat
        t = c.text
        self.img_projector = Projector(c.proj_hidden, c.proj_dim, name="img_projector", **kw)
        self.text_projector = Projector(c.proj_hidden, c.proj_dim, name="text_projector", **kw)
        self.text = AdapterTextTransformer(t, dtype=self.dtype, adapter_dim=c.text_adapter_dim,
                                           adapter_scale=c.adapter_scale, adapter_dropout=c.adapter_dropout,
                                           name="text")
        self.saliency_projector = self.param("saliency_projector", nn.initializers.normal(d ** -0.5), (d, t.text_width))
        init_scale = lambda *_: jnp.asarray(math.log(1 / 0.07), jnp.float32)
        self.logit_scale = self.param("logit_scale", init_scale)
        self.multi_label_logit_scale = self.param("multi_label_logit_scale", init_scale)
        if c.zero_shot_clip:
            # Frozen plain CLIP (param_label 'frozen'): visual projection, text tower with projection, logit scale.
            self.zs_visual_proj = self.param("zs_visual_proj", nn.initializers.normal(d ** -0.5), (d, t.embed_dim))
            self.zs_text = TextTransformer(t, dtype=self.dtype, name="zs_text")
            self.zs_logit_scale = self.param("zs_logit_scale", lambda *_: jnp.asarray(math.log(100.0), jnp.float32))

    # -- scales
    def scale(self) -> Array:
        return jnp.minimum(jnp.exp(self.logit_scale), LOGIT_SCALE_MAX)

    def multi_label_scale(self) -> Array:
        return jnp.minimum(jnp.exp(self.multi_label_logit_scale), LOGIT_SCALE_MAX)

    # -- video
    def encode_video(self, features: Array, deterministic: bool = True, gumbel: Optional[bool] = None,
                     gumbel_noise: Optional[Array] = None) -> dict:
        """features [B, W, D] -> dict (see the class docstring). ``gumbel`` (default: not deterministic):
        Gumbel-softmax assignment with ``gumbel_noise`` [B, G', W] (drawn from rng 'gumbel' when None);
        else the hard argmax assignment."""
        c = self.config
        if features.shape[1:] != (c.window, c.feature_dim):
            raise ValueError(f"OV-OAD expects features [B, {c.window}, {c.feature_dim}], got {features.shape}")
        dt = self.dtype or features.dtype
        x = features.astype(dt) + self.pos_embed.astype(dt)
        x = self.pos_drop(x, deterministic=deterministic)
        n = c.num_neighbour
        if c.dntr_mode == "released":
            for blk in self.dntr:
                x = blk(x, deterministic)
            cross = self.dntr_cross(x[:, -n:], x[:, :-n])  # V_N attends to V_P (all in the past)
        else:  # paper: decoder layers, queries V_N (causal among themselves), memory V_P
            cross = x[:, -n:]
            for blk in self.dntr:
                cross = blk(cross, x[:, :-n], deterministic)
        dntr_tokens = x
        if c.dntr_write_back:
            x = jnp.concatenate([x[:, :-n], cross], axis=1)
        enc_feat = self.ln_out(cross[:, -1])
        g = jnp.broadcast_to(self.group_token.astype(x.dtype), (x.shape[0],) + self.group_token.shape[1:])
        h = jnp.concatenate([x, g], axis=1)
        for blk in self.cluster:
            h = blk(h, deterministic)
        if gumbel is None:
            gumbel = not deterministic
        noise = None
        if gumbel:
            shape = (x.shape[0], c.num_output_groups, c.window)
            noise = (jax.random.gumbel(self.make_rng("gumbel"), shape, _sd(x)) if gumbel_noise is None
                     else gumbel_noise.reshape(shape))
        out = self.grouping(h[:, :c.window], h[:, c.window:], deterministic, noise)
        tokens = out["groups"]
        for blk in self.out_blocks:
            tokens = blk(tokens, deterministic)
        groups = self.ln_out(tokens)
        return {**{k: v for k, v in out.items() if k != "groups"}, "enc_feat": enc_feat, "dntr_tokens": dntr_tokens,
                "dntr_cross": cross, "cluster_frames": h[:, :c.window], "cluster_groups": h[:, c.window:],
                "grouped": out["groups"], "out_tokens": tokens, "groups": groups, "video": groups.mean(1)}

    # -- text
    def encode_text(self, ids: Array, deterministic: bool = True) -> Array:
        return self.text.encode(ids, deterministic)

    def project_video(self, x: Array) -> Array:
        return self.img_projector(x)

    def project_text(self, x: Array) -> Array:
        return self.text_projector(x)

    def saliency(self, enc_feat: Array) -> Array:
        return enc_feat @ self.saliency_projector.astype(enc_feat.dtype)

    def vocabulary(self, ids: Array) -> dict:
        """Class prompt ids [C, L] -> dict(proj [C, P] L2-normalised (build_text_embedding), text [C, Tw] the RAW
        text feature (build_text_embedding_saliency_prediction), zs [C, E] L2-normalised CLIP text if
        zero_shot_clip)."""
        t = self.encode_text(ids)
        voc = {"proj": l2n(self.project_text(t)), "text": t}
        if self.config.zero_shot_clip:
            voc["zs"] = l2n(self.zs_text(ids))
        return voc

    # -- scores
    def score_parts(self, features: Array, vocab: Mapping[str, Array]) -> dict:
        """Every released eval score of windows features [B, W, D] (eval mode):

        temporal [B, W, C] (GroupViTOadInference 'temporal'; the evaluation reads [:, -1]), ac [B, C] its
        last frame, current [B, C] (softmax of the raw enc_feat @ saliency_projector . text dot product),
        zs_frames [B, W, C] / zs [B, C] (plain CLIP on f / |f| @ visual.proj, pooled by zero_shot_pool) and
        fused [B, C] (score_fusion); and the steps: pooled_logits / pooled_prob [B, C], group_logits [B, G', C] (-inf outside
        the window's top-k classes), group_prob, frame_group [B, W, G'] (one-hot), frame_logits [B, W, C]."""
        c = self.config
        out = self.encode_video(features, deterministic=True)
        sd = _sd(out["video"])
        s = self.scale().astype(sd)
        proj = vocab["proj"].astype(sd)
        groups = l2n(self.project_video(out["groups"])).astype(sd)  # [B, G', P]
        pooled = l2n(self.project_video(out["video"])).astype(sd)  # [B, P]
        affinity = s * jnp.einsum("bgp,cp->bgc", groups, proj)
        pooled_logits = s * pooled @ proj.T
        pooled_prob = jax.nn.softmax(pooled_logits, axis=-1)  # [B, C]
        k = min(c.top_k, proj.shape[0])
        top = jax.lax.top_k(pooled_prob, k)[1]  # exactly k classes, as scatter_add over topk indices
        keep = jax.nn.one_hot(top, proj.shape[0], dtype=jnp.int32).sum(1) > 0
        masked = jnp.where(keep[:, None, :], affinity, -jnp.inf)
        affinity = jax.nn.softmax(masked, axis=-1)  # [B, G', C]
        frame_group = jax.nn.one_hot(jnp.argmax(out["soft"], axis=1), c.num_output_groups, dtype=sd)  # [B, W, G']
        frame_logits = jnp.einsum("bwg,bgc->bwc", frame_group, affinity)
        temporal = jax.nn.softmax(frame_logits, axis=-1)
        cur = self.saliency(out["enc_feat"]).astype(sd)
        parts = {"temporal": temporal, "ac": temporal[:, -1],
                 "current": jax.nn.softmax(cur @ vocab["text"].astype(sd).T, axis=-1),
                 "pooled_logits": pooled_logits, "pooled_prob": pooled_prob, "group_logits": masked, "group_prob": affinity,
                 "frame_group": frame_group, "frame_logits": frame_logits}
        if c.zero_shot_clip:
            f = l2n(features.astype(sd)) @ self.zs_visual_proj.astype(sd)  # normalised BEFORE the projection
            zs = jax.nn.softmax(jnp.exp(self.zs_logit_scale.astype(sd)) * f @ vocab["zs"].astype(sd).T, axis=-1)
            parts["zs_frames"] = zs
        return fuse_scores(parts, c)

    def scores(self, features: Array, vocab: Mapping[str, Array]) -> Array:
        """Fused class scores [B, C] of the last frame of each window features [B, W, D] (eval mode)."""
        return self.score_parts(features, vocab)["fused"]

    def __call__(self, features: Array, ids: Array, deterministic: bool = True) -> dict:
        """Everything (used for init): encode_video outputs + vocabulary of ids [C, L] + scores [B, C]."""
        out = self.encode_video(features, deterministic)
        voc = self.vocabulary(ids)
        out["proj_video"] = self.project_video(out["video"])
        out["saliency"] = self.saliency(out["enc_feat"])
        out["scores"] = self.scores(features, voc)
        return out


def fuse_scores(parts: dict, c: OVOADConfig) -> dict:
    """Add ``zs`` (the plain-CLIP prior pooled by ``c.zero_shot_pool``: window mean or last frame) and ``fused``
    [B, C] (``c.score_fusion``) to score parts holding ac, current [B, C] and zs_frames [B, W, C]."""
    parts = dict(parts)
    if "zs_frames" in parts:
        zs = parts["zs_frames"]
        parts["zs"] = zs.mean(1) if c.zero_shot_pool == "means" else zs[:, -1]
    if c.score_fusion == "ac":
        parts["fused"] = parts["ac"]
    elif c.score_fusion == "paper":
        parts["fused"] = parts["ac"] + c.alpha * parts["current"]
    else:
        fuse = [parts["ac"], parts["current"]] + ([parts["zs"]] if "zs" in parts else [])
        parts["fused"] = sum(fuse) / len(fuse)
    return parts


def init_params(config: OVOADConfig, rng: Optional[Array] = None, context_length: int = 77) -> dict:
    """Random float32 parameters (CLIP weights, when used, are loaded on top by the task)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    model = OVOAD(config)
    feats = jnp.zeros((1, config.window, config.feature_dim), jnp.float32)
    ids = jnp.zeros((2, context_length), jnp.int32).at[:, 1].set(1)
    return jax.jit(model.init)(rng, feats, ids)["params"]


def mask_prediction(q: Array, k: Array) -> Array:
    """Released background-mask prediction: mean over groups of q k^T / sqrt(D) [B, W], L2-normalised
    over frames, then min-max scaled to [0, 1] (the released min_max_norm has no epsilon; a flat row
    gives 0 here instead of NaN). q [B, G, D], k [B, W, D]."""
    pred = (jnp.einsum("bgd,bwd->bgw", q, k) / math.sqrt(q.shape[-1])).mean(1)
    pred = l2n(pred.astype(_sd(pred)))
    lo, hi = pred.min(-1, keepdims=True), pred.max(-1, keepdims=True)
    span = hi - lo
    return (pred - lo) / jnp.where(span > 0, span, 1.0)


def paper_mask_prediction(soft: Array, groups_proj: Array, text_proj: Array) -> Array:
    """Paper eq. (1): M_B = A . G . T^T with A [B, G, W] (soft assignment), G [B, G, P] and T [B, P]
    (the window's caption), squashed to [0, 1] by a sigmoid. -> [B, W]."""
    sd = _sd(soft)
    m = jnp.einsum("bgw,bgp,bp->bw", soft.astype(sd), l2n(groups_proj).astype(sd), l2n(text_proj).astype(sd))
    return jax.nn.sigmoid(m)
