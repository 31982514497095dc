"""Building blocks shared by every tcvideo model: LayerNorm, QuickGELU MLP, attention.

All modules are dtype-generic: ``dtype`` is the compute dtype, ``param_dtype`` the
storage dtype. Nothing inside hard-codes float32, so the same code runs the float64
parity tests and bfloat16/float16 training.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Array = jax.Array

LN_EPS = 1e-5  # PyTorch's LayerNorm default, which CLIP was trained with.


def stats_dtype(dtype: Dtype) -> Dtype:
    """Normalisation statistics run in at least float32 (as CLIP's fp16 LayerNorm does)."""
    return jnp.promote_types(dtype, jnp.float32)


class LayerNorm(nn.Module):
    """Two-pass LayerNorm over the last axis, statistics in >= float32, output in ``dtype``."""

    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    epsilon: float = LN_EPS

    @nn.compact
    def __call__(self, x: Array) -> Array:
        d = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (d,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (d,), self.param_dtype)
        out_dtype = self.dtype or x.dtype
        sd = stats_dtype(jnp.promote_types(x.dtype, self.param_dtype))
        xf = x.astype(sd)
        mean = xf.mean(-1, keepdims=True)
        centred = xf - mean
        var = (centred * centred).mean(-1, keepdims=True)
        y = centred * jax.lax.rsqrt(var + jnp.asarray(self.epsilon, sd))
        y = y * scale.astype(sd) + bias.astype(sd)
        return y.astype(out_dtype)


def quick_gelu(x: Array) -> Array:
    """CLIP's GELU approximation x * sigmoid(1.702 x)."""
    return x * jax.nn.sigmoid(jnp.asarray(1.702, x.dtype) * x)


class MLP(nn.Module):
    """c_fc -> QuickGELU -> c_proj, as in every CLIP residual block. [..., D] -> [..., D]."""

    width: int
    mlp_ratio: int = 4
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dense = lambda n, name: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype, name=name)
        return dense(self.width, "c_proj")(quick_gelu(dense(self.width * self.mlp_ratio, "c_fc")(x)))


def attention(q: Array, k: Array, v: Array, bias: Optional[Array] = None,
              is_causal: bool = False) -> Array:
    """Scaled dot-product attention. q [B, Nq, H, Dh], k/v [B, Nk, H, Dh] -> [B, Nq, H, Dh].

    ``bias`` broadcasts to [B, H, Nq, Nk]. On accelerators, low and single precision go through
    ``jax.nn.dot_product_attention`` (fused cuDNN kernels on GPU). On CPU they take
    ``head_major_attention``, which XLA:CPU runs 2-3x faster. float64 takes the explicit
    reference path because the fused function always runs its softmax in float32, which
    would cap the float64 parity tests at ~1e-7.
    """
    on_cpu = jax.default_backend() == "cpu"
    if q.dtype == jnp.float64 or (q.dtype == jnp.float16 and on_cpu):
        # XLA:CPU has no float16 dot with float32 accumulation, which the other paths ask for.
        return reference_attention(q, k, v, bias=bias, is_causal=is_causal)
    if on_cpu:
        return head_major_attention(q, k, v, bias=bias, is_causal=is_causal)
    if bias is not None:
        bias = bias.astype(q.dtype)
    return jax.nn.dot_product_attention(q, k, v, bias=bias, is_causal=is_causal)


def head_major_attention(q: Array, k: Array, v: Array, bias: Optional[Array] = None,
                         is_causal: bool = False) -> Array:
    """Attention as two plain batched matmuls over [B, H, N, Dh]; same signature as ``attention``.

    Why: XLA:CPU lowers the [B, N, H, Dh] einsums of the generic path to strided dots and
    normalises the full [Nq, Nk] probability matrix. Here the operands are made head-major once,
    the softmax stays unnormalised (max-shifted exponentials, logits and sums in >= float32) and
    the [Nq, Dh] output is divided by the row sums instead. Measured on a 2-core AVX-512 CPU for
    one ViT-B/16 layer of 8 frames: 20.6 -> 8.7 ms (197 keys), 44.4 -> 15.1 ms (293 keys).
    """
    sd = stats_dtype(q.dtype)
    heads_first = lambda z: jnp.swapaxes(z, -3, -2)  # [..., N, H, Dh] <-> [..., H, N, Dh]
    qh = heads_first(q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype))
    logits = jnp.matmul(qh, jnp.swapaxes(heads_first(k), -1, -2), preferred_element_type=sd)
    if bias is not None:
        logits = logits + bias.astype(sd)
    if is_causal:
        nq, nk = logits.shape[-2:]
        logits = jnp.where(jnp.tril(jnp.ones((nq, nk), bool)), logits, jnp.finfo(sd).min)
    # The shift cancels in the ratio, so it needs no gradient.
    e = jnp.exp(logits - jax.lax.stop_gradient(logits.max(-1, keepdims=True)))
    out = jnp.matmul(e.astype(v.dtype), heads_first(v), preferred_element_type=sd)
    return heads_first((out / e.sum(-1, keepdims=True)).astype(q.dtype))


def attention_probs(q: Array, k: Array, bias: Optional[Array] = None, is_causal: bool = False) -> Array:
    """Softmax(q k^T / sqrt(Dh) + bias) as [B, H, Nq, Nk], softmax in >= float32."""
    scale = jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * scale, k).astype(stats_dtype(q.dtype))
    if bias is not None:
        logits = logits + bias.astype(logits.dtype)
    if is_causal:
        nq, nk = logits.shape[-2:]
        keep = jnp.tril(jnp.ones((nq, nk), bool))
        logits = jnp.where(keep, logits, jnp.finfo(logits.dtype).min)
    return jax.nn.softmax(logits, axis=-1)


def reference_attention(q: Array, k: Array, v: Array, bias: Optional[Array] = None,
                        is_causal: bool = False) -> Array:
    """Unfused attention in the input dtype (see ``attention``)."""
    probs = attention_probs(q, k, bias=bias, is_causal=is_causal).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def split_heads(x: Array, num_heads: int) -> Array:
    """[..., N, D] -> [..., N, H, D / H]."""
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: Array) -> Array:
    """[..., N, H, Dh] -> [..., N, H * Dh]."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


class MultiHeadAttention(nn.Module):
    """PyTorch ``nn.MultiheadAttention`` math with a fused ``in_proj`` (q, k, v stacked).

    Self-attention when ``kv`` is None; cross-attention otherwise.
    x [B, Nq, D], kv [B, Nk, D] -> [B, Nq, D].
    """

    width: int
    num_heads: int
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    def setup(self):
        d = self.width
        init = nn.initializers.lecun_normal()
        # One [D, 3D] kernel (PyTorch's in_proj_weight transposed) so that self-attention
        # is a single matmul; TC blocks slice it (q for frame tokens, k/v for frame + context).
        self.in_proj_kernel = self.param("in_proj_kernel", init, (d, 3 * d), self.param_dtype)
        self.in_proj_bias = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,), self.param_dtype)
        self.out_proj = nn.Dense(d, dtype=self.dtype, param_dtype=self.param_dtype)

    def _proj(self, x: Array, start: int, stop: int) -> Array:
        dt = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
        w = self.in_proj_kernel[:, start * self.width:stop * self.width].astype(dt)
        b = self.in_proj_bias[start * self.width:stop * self.width].astype(dt)
        return x.astype(dt) @ w + b

    def project_q(self, x: Array) -> Array:
        """[..., D] -> [..., D]."""
        return self._proj(x, 0, 1)

    def project_kv(self, x: Array) -> tuple[Array, Array]:
        """[..., D] -> ([..., D], [..., D])."""
        kv = self._proj(x, 1, 3)
        return kv[..., :self.width], kv[..., self.width:]

    def project_qkv(self, x: Array) -> tuple[Array, Array, Array]:
        qkv = self._proj(x, 0, 3)
        d = self.width
        return qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]

    def __call__(self, x: Array, kv: Optional[Array] = None, is_causal: bool = False,
                 bias: Optional[Array] = None) -> Array:
        if kv is None:
            q, k, v = self.project_qkv(x)
        else:
            q = self.project_q(x)
            k, v = self.project_kv(kv)
        h = self.num_heads
        out = attention(split_heads(q, h), split_heads(k, h), split_heads(v, h), bias=bias,
                        is_causal=is_causal)
        return self.out_proj(merge_heads(out))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block of CLIP: x + attn(ln_1(x)); x + mlp(ln_2(x)). [B, N, D]."""

    width: int
    num_heads: int
    causal: bool = False
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = x + MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(
            LayerNorm(name="ln_1", **kw)(x), is_causal=self.causal)
        return x + MLP(self.width, name="mlp", **kw)(LayerNorm(name="ln_2", **kw)(x))
