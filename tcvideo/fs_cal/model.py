"""FS-CAL (Lee et al., ICCV 2023): few-shot common action localisation on per-snippet features.

Inputs (one episode per row): query snippet features [B, T, D_in] with a validity mask [B, T], and
S support instances resampled to M segments, [B, S, M, D_in]. Row-vector convention below (the paper
writes column vectors: its X_Q^T W X_S is our X_Q W X_S^T).

* Snippet encoder (shared by query and supports): Dense(H) -> GELU -> Conv1d(k=3) -> GELU.
* Proposals (anchor based): at every query snippet t and every length s in ``anchor_scales`` an anchor
  [t + 0.5 - s/2, t + 0.5 + s/2] (N = T x len(scales)). Its feature X_Q [B, N, H] is
  Dense(H)+LayerNorm of [mean inside, mean of the ``context_ratio`` x s snippets left of it, same to
  the right]. Anchors centred on padding are masked.
* Stage 1, query-to-support context CA (each support l separately, shared weights; formulas 1-2):
  Lambda = X_Q W_QS X_S^(l)^T / sqrt(H)  [N, M];  X~_S^(l) = A^T X_Q + X_S^(l).
* Stage 2, dynamics CA (formulas 3-5): each stage-1 support is summarised at coarser granularities,
  a strided 1-D convolution of kernel = stride = k for k in ``dynamics_kernels`` (``dynamics_summary``:
  "strided", "pooled" = window mean then a linear map, "same" = stride 1, not coarser), giving
  X~_S' [P, H] per support; the segments of each support attend to the summaries of all supports
  (``dynamics_keys="all"``, "individual-to-all"; "own": its own only):
  Lambda = X~_S' W_S'S X~_S^(l)^T / sqrt(H)  [S*P, M];  Y~_S^(l) = A^T X~_S' + X~_S^(l). (Formula 5's
  residual is read as the stage-1 output X~_S^(l): the only term with the [M, H] shape of the result.)
* Stage 3, support-to-query context CA over all supports at once (formula 6): Y~_S = the S*M segments
  of every support; Lambda = Y~_S W_SQ X_Q^T / sqrt(H)  [S*M, N];  X~_Q = A^T Y~_S + X_Q. A sum over
  all support segments: invariant to the order of the supports.
* Softmax (``softmax_over``): "rows" (default) is the paper's row-wise softmax of each Lambda (over its
  columns, the outputs); as written, output c receives sum_r A[r, c] X_r, whose scale is R / C (48
  proposals per 8 segments make stage 1's output 6x its input: the literal loss starts at 36 and the
  model learns to ignore its supports), so ``row_norm="columns"`` (default) divides each column of A
  by its sum (the output is a convex combination of the rows, A keeps the paper's row-wise shape);
  "count" rescales by C / R instead; "none" is the literal formula. "keys" is standard attention
  (softmax over the summed axis). The 1/sqrt(H) scale is a reparametrisation of W that keeps the
  initial logits O(1).
* Relational classifier: the action classifier scores each fused proposal against the support
  prototype p = mean of Y~_S over supports and segments: MLP([X~_Q, X~_Q * p, X_Q]) -> a foreground
  logit and a boundary regression (centre offset / anchor length, log length ratio). The auxiliary
  relation module (training only: built when ``relation_weights`` is passed) classifies
  [weighted mean of fused proposals, p] into ``num_pseudo_classes`` pseudo-action classes (the task
  maps training classes to pseudo classes by k-means of their mean features).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip.layers import LayerNorm

SOFTMAX_OVER = ("rows", "keys")
ROW_NORMS = ("columns", "count", "none")
DYNAMICS_SUMMARIES = ("strided", "pooled", "same")
DYNAMICS_KEYS = ("all", "own")
Array = jax.Array


@dataclasses.dataclass(frozen=True)
class FSCALConfig:
    hidden_dim: int = 256
    anchor_scales: tuple[int, ...] = (4, 8, 16, 32, 64)  # anchor lengths in snippets
    context_ratio: float = 0.25  # proposal context on each side, fraction of the anchor length
    dynamics_kernels: tuple[int, ...] = (1, 2, 4)  # stage-2 granularities (kernel = stride, segments)
    dynamics_summary: str = "strided"  # "strided" | "pooled" | "same" (see module docstring)
    dynamics_keys: str = "all"  # "all" supports' summaries (individual-to-all) | "own"
    softmax_over: str = "rows"  # "rows" (the paper's row-wise softmax) | "keys"
    row_norm: str = "columns"  # with rows: "columns" | "count" | "none" (literal)
    num_pseudo_classes: int = 16  # outputs of the training-only relation module

    def __post_init__(self):
        if self.softmax_over not in SOFTMAX_OVER:
            raise ValueError(f"softmax_over {self.softmax_over!r} not in {SOFTMAX_OVER}")
        for name, allowed in (("row_norm", ROW_NORMS), ("dynamics_summary", DYNAMICS_SUMMARIES),
                              ("dynamics_keys", DYNAMICS_KEYS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} not in {allowed}")
        if not self.anchor_scales or min(self.anchor_scales) < 1:
            raise ValueError(f"anchor_scales {self.anchor_scales}: need lengths >= 1")
        if not self.dynamics_kernels or min(self.dynamics_kernels) < 1:
            raise ValueError(f"dynamics_kernels {self.dynamics_kernels}: need kernel sizes >= 1")


# ----------------------------------------------------------------------------- anchors

def make_anchors(num_snippets: int, scales: Sequence[int]) -> np.ndarray:
    """[N = T * len(scales), 2] (start, end) in snippet units, ordered (t, scale)."""
    c = np.arange(num_snippets, dtype=np.float32)[:, None] + 0.5
    s = np.asarray(scales, np.float32)[None, :]
    return np.stack([c - s / 2, c + s / 2], -1).reshape(-1, 2)


def anchor_centre_index(anchors: np.ndarray, num_snippets: int) -> np.ndarray:
    """Snippet holding each anchor's centre [N]: an anchor is valid when that snippet is."""
    return np.minimum(np.floor(anchors.mean(-1)).astype(np.int32), num_snippets - 1)


def decode_boxes(anchors: Array, reg: Array) -> Array:
    """anchors [N, 2], reg [..., N, 2] (centre offset / length, log length ratio) -> [..., N, 2]."""
    ac, al = anchors.mean(-1), anchors[:, 1] - anchors[:, 0]
    c = ac + reg[..., 0] * al
    length = al * jnp.exp(jnp.clip(reg[..., 1], -4.0, 4.0))
    return jnp.stack([c - length / 2, c + length / 2], -1)


def encode_boxes(anchors: Array, boxes: Array) -> Array:
    """Inverse of ``decode_boxes``: boxes [..., N, 2] -> regression targets [..., N, 2]."""
    ac, al = anchors.mean(-1), anchors[:, 1] - anchors[:, 0]
    bc, bl = boxes.mean(-1), jnp.maximum(boxes[..., 1] - boxes[..., 0], 1e-3)
    return jnp.stack([(bc - ac) / al, jnp.log(bl / al)], -1)


def _pool_indices(anchors: np.ndarray, t: int, context_ratio: float):
    """Static integer [lo, hi) ranges (inside, left context, right context) of each anchor, each [N, 2]."""
    a = np.clip(np.floor(anchors[:, 0]), 0, t).astype(np.int32)
    b = np.clip(np.ceil(anchors[:, 1]), 0, t).astype(np.int32)
    r = np.maximum(1, np.round(context_ratio * (anchors[:, 1] - anchors[:, 0]))).astype(np.int32)
    inside = np.stack([a, b], -1)
    left = np.stack([np.maximum(a - r, 0), a], -1)
    right = np.stack([b, np.minimum(b + r, t)], -1)
    return inside, left, right


def range_means(x: Array, ranges: np.ndarray, mask: Optional[Array] = None) -> Array:
    """x [B, T, H], static ranges [N, 2] -> means over [lo, hi) [B, N, H] (0 for empty ranges). With
    ``mask`` [B, T] the mean is over the valid snippets of each range (x must be 0 elsewhere), so a query
    gives the same proposal features whatever padding its bucket adds."""
    cs = jnp.concatenate([jnp.zeros_like(x[:, :1]), jnp.cumsum(x, axis=1)], axis=1)
    if mask is None:
        n = jnp.asarray(np.maximum(ranges[:, 1] - ranges[:, 0], 1).astype(np.float32), x.dtype)[None, :, None]
    else:
        cm = jnp.concatenate([jnp.zeros_like(mask[:, :1], jnp.float32), jnp.cumsum(mask.astype(jnp.float32), 1)], 1)
        n = jnp.maximum(cm[:, ranges[:, 1]] - cm[:, ranges[:, 0]], 1.0).astype(x.dtype)[..., None]
    return (cs[:, ranges[:, 1]] - cs[:, ranges[:, 0]]) / n


# ----------------------------------------------------------------------------- attention stages

def attention_weights(lam: Array, softmax_over: str, row_norm: str, row_mask: Optional[Array] = None,
                      col_mask: Optional[Array] = None) -> Array:
    """Weights A [..., R, C] of one stage from its affinity Lambda [..., R, C]; output c = sum_r A[r, c] v_r.

    Rows r index what is summed (the paper's X A: columns of X times A), columns c the outputs.
    ``softmax_over="rows"``: the paper's row-wise softmax (over c for each r), then ``row_norm``:
    "columns" divides each column by its sum (each output a convex combination of the rows, whatever
    the numbers of rows and columns), "count" multiplies by (#valid columns / #valid rows) (the mean
    column sum), "none" is the literal formula (output scale ~ R / C). ``"keys"``: softmax over r for
    each c (standard attention). Masked rows get weight 0; masks broadcast to [..., R, C].
    """
    lam = lam.astype(jnp.float32)
    if softmax_over == "keys":
        return _softmax(lam, axis=-2, mask=row_mask)
    a = _softmax(lam, axis=-1, mask=col_mask)
    if row_mask is not None:
        a = jnp.where(row_mask, a, 0.0)
    if row_norm == "columns":
        return a / jnp.maximum(a.sum(-2, keepdims=True), 1e-6)
    if row_norm == "count":
        n_rows = jnp.sum(jnp.broadcast_to(row_mask if row_mask is not None else True, lam.shape[:-1] + (1,)),
                         axis=-2, keepdims=True)
        n_cols = jnp.sum(jnp.broadcast_to(col_mask if col_mask is not None else True, lam.shape[:-2] + (1,) +
                                          lam.shape[-1:]), axis=-1, keepdims=True)
        return a * n_cols / jnp.maximum(n_rows, 1)
    return a


def _softmax(logits: Array, axis: int, mask: Optional[Array]) -> Array:
    """Softmax over ``axis``; entries where mask is False get weight 0 (mask broadcastable)."""
    logits = logits.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, -1e30)
    w = jax.nn.softmax(logits, axis=axis)
    return w if mask is None else jnp.where(mask, w, 0.0)


class _Bilinear(nn.Module):
    """The learnable W [H, H] of one stage's affinity X W Y^T."""

    @nn.compact
    def __call__(self, h: int) -> Array:
        return self.param("W", nn.initializers.normal(1.0 / math.sqrt(h)), (h, h))


class QueryToSupportContext(nn.Module):
    """Stage 1 (formulas 1-2), each support separately. xq [B, N, H], q_mask [B, N] bool,
    xs [B, S, M, H] -> X~_S [B, S, M, H]: Lambda = X_Q W X_S^T [N, M], X~_S = A^T X_Q + X_S."""

    softmax_over: str = "rows"
    row_norm: str = "columns"

    @nn.compact
    def __call__(self, xq: Array, q_mask: Array, xs: Array) -> Array:
        h = xq.shape[-1]
        w = _Bilinear(name="bilinear")(h).astype(xq.dtype)
        lam = jnp.einsum("bnh,hk,bsmk->bsnm", xq, w, xs) / math.sqrt(h)  # [B, S, N, M]
        a = attention_weights(lam, self.softmax_over, self.row_norm, row_mask=q_mask[:, None, :, None])
        return jnp.einsum("bsnm,bnh->bsmh", a.astype(xq.dtype), xq) + xs


class DynamicsCrossAttention(nn.Module):
    """Stage 2 (formulas 3-5). xs [B, S, M, H] (stage-1 output) -> Y~_S [B, S, M, H].

    Formula 3: each support is summarised at coarser granularities, one learnable 1-D temporal filter
    w_k per k in ``kernels`` (``summary``: "strided" = convolution of kernel k and stride k; "pooled" =
    mean over windows of k segments then a per-k linear map; "same" = stride-1 'same' convolution, not
    coarser: tcvideo's earlier reading) -> X~_S' [B, S, P, H], P = sum_k ceil(M / k) (segments padded to
    a multiple of k by repeating the last one).
    Formula 4-5, ``keys="all"`` (individual-to-all): the segments of each support l attend to the coarse
    summaries of all S supports, Lambda^(l) = X~_S' W X~_S^(l)^T [S*P, M], Y~_S^(l) = A^T X~_S' + X~_S^(l)
    (the residual is the stage-1 output, the only [M, H] term); ``keys="own"``: to support l's only."""

    hidden: int
    kernels: tuple[int, ...] = (1, 2, 4)
    summary: str = "strided"
    keys: str = "all"
    softmax_over: str = "rows"
    row_norm: str = "columns"
    dtype: Any = jnp.float32

    def setup(self):
        if self.summary == "pooled":
            self.filters = [nn.Dense(self.hidden, dtype=self.dtype, name=f"pool_k{k}") for k in self.kernels]
        else:
            strided = self.summary == "strided"
            self.filters = [nn.Conv(self.hidden, (k,), strides=(k,) if strided else 1,
                                    padding="VALID" if strided else "SAME", dtype=self.dtype, name=f"conv_k{k}")
                            for k in self.kernels]
        self.bilinear = _Bilinear()

    def granularities(self, xs: Array) -> Array:
        """X~_S' [B, S, P, H]: each support's summaries at every granularity, concatenated along segments."""
        b, s, m, h = xs.shape
        flat = xs.reshape(b * s, m, h)
        outs = []
        for k, f in zip(self.kernels, self.filters):
            if self.summary == "same":
                outs.append(f(flat))
                continue
            n = -(-m // k)
            padded = jnp.concatenate([flat, jnp.repeat(flat[:, -1:], n * k - m, axis=1)], axis=1)
            if self.summary == "pooled":
                outs.append(f(padded.reshape(b * s, n, k, h).mean(2)))
            else:
                outs.append(f(padded))
        return jnp.concatenate(outs, axis=1).reshape(b, s, -1, h)

    def __call__(self, xs: Array) -> Array:
        b, s, m, h = xs.shape
        xp = self.granularities(xs)  # [B, S, P, H]
        w = self.bilinear(h).astype(xs.dtype)
        if self.keys == "all":
            keys = jnp.broadcast_to(xp.reshape(b, 1, -1, h), (b, s, s * xp.shape[2], h))  # [B, S, S*P, H]
        else:
            keys = xp
        lam = jnp.einsum("bsph,hk,bsmk->bspm", keys, w, xs) / math.sqrt(h)  # [B, S, R, M]
        a = attention_weights(lam, self.softmax_over, self.row_norm)
        return jnp.einsum("bspm,bsph->bsmh", a.astype(xs.dtype), keys) + xs


class SupportToQueryContext(nn.Module):
    """Stage 3 (formula 6), all supports at once. xq [B, N, H], q_mask [B, N], ys [B, S, M, H] ->
    X~_Q [B, N, H]: Lambda = Y~_S W X_Q^T [S*M, N], X~_Q = A^T Y~_S + X_Q."""

    softmax_over: str = "rows"
    row_norm: str = "columns"

    @nn.compact
    def __call__(self, xq: Array, q_mask: Array, ys: Array) -> Array:
        b, s, m, h = ys.shape
        y = ys.reshape(b, s * m, h)
        w = _Bilinear(name="bilinear")(h).astype(xq.dtype)
        lam = jnp.einsum("bjh,hk,bnk->bjn", y, w, xq) / math.sqrt(h)  # [B, S*M, N]
        a = attention_weights(lam, self.softmax_over, self.row_norm, col_mask=q_mask[:, None, :])
        return jnp.einsum("bjn,bjh->bnh", a.astype(xq.dtype), y) + xq


# ----------------------------------------------------------------------------- the model

class SnippetEncoder(nn.Module):
    """[..., T, D_in] -> [..., T, H] (shared by query and support snippets)."""

    hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        lead, (t, d) = x.shape[:-2], x.shape[-2:]
        x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype, name="proj")(x.reshape(-1, t, d)))
        x = nn.gelu(nn.Conv(self.hidden, (3,), padding="SAME", dtype=self.dtype, name="conv")(x))
        return x.reshape(lead + (t, self.hidden))


class FSCAL(nn.Module):
    """apply({'params': p}, query [B, T, D], query_mask [B, T], support [B, S, M, D][, relation_weights
    [B, N]]) -> {'logits' [B, N], 'reg' [B, N, 2], 'boxes' [B, N, 2], 'proposal_mask' [B, N],
    'relation_logits' [B, P] (only with relation_weights)}; anchors from ``make_anchors(T, scales)``."""

    config: FSCALConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, query: Array, query_mask: Array, support: Array,
                 relation_weights: Optional[Array] = None) -> dict:
        cfg, h = self.config, self.config.hidden_dim
        t = query.shape[1]
        anchors = make_anchors(t, cfg.anchor_scales)
        enc = SnippetEncoder(h, self.dtype, name="encoder")
        hq = enc(query.astype(self.dtype)) * query_mask[..., None].astype(self.dtype)  # [B, T, H]
        pooled = [range_means(hq, r, query_mask) for r in _pool_indices(anchors, t, cfg.context_ratio)]
        xq = LayerNorm(dtype=self.dtype, name="proposal_norm")(
            nn.Dense(h, dtype=self.dtype, name="proposal_proj")(jnp.concatenate(pooled, -1)))  # [B, N, H]
        p_mask = query_mask[:, anchor_centre_index(anchors, t)]  # [B, N]
        xs = LayerNorm(dtype=self.dtype, name="segment_norm")(
            nn.Dense(h, dtype=self.dtype, name="segment_proj")(enc(support.astype(self.dtype))))  # [B, S, M, H]

        sm, rn = cfg.softmax_over, cfg.row_norm
        xs1 = QueryToSupportContext(sm, rn, name="stage1_q2s")(xq, p_mask, xs)
        ys = DynamicsCrossAttention(h, tuple(cfg.dynamics_kernels), cfg.dynamics_summary, cfg.dynamics_keys, sm, rn,
                                    self.dtype, name="stage2_dynamics")(xs1)
        fused = SupportToQueryContext(sm, rn, name="stage3_s2q")(xq, p_mask, ys)  # [B, N, H]

        proto = ys.mean(axis=(1, 2))  # [B, H]
        z = jnp.concatenate([fused, fused * proto[:, None], xq], -1)
        z = nn.gelu(nn.Dense(h, dtype=self.dtype, name="cls_fc1")(z))
        z = nn.gelu(nn.Dense(h, dtype=self.dtype, name="cls_fc2")(z))
        logits = nn.Dense(1, dtype=self.dtype, name="cls_out")(z)[..., 0].astype(jnp.float32)
        reg = nn.Dense(2, dtype=self.dtype, name="reg_out", kernel_init=nn.initializers.zeros)(z).astype(jnp.float32)
        out = {"logits": logits, "reg": reg, "boxes": decode_boxes(jnp.asarray(anchors), reg),
               "proposal_mask": p_mask}
        if relation_weights is not None:  # auxiliary relation module: training only
            wsum = jnp.maximum(relation_weights.sum(-1, keepdims=True), 1e-6)
            pos = jnp.einsum("bn,bnh->bh", relation_weights.astype(self.dtype), fused) / wsum.astype(self.dtype)
            r = nn.gelu(nn.Dense(h, dtype=self.dtype, name="relation_fc")(jnp.concatenate([pos, proto], -1)))
            out["relation_logits"] = nn.Dense(cfg.num_pseudo_classes, dtype=self.dtype,
                                              name="relation_out")(r).astype(jnp.float32)
        return out
