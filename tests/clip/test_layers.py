"""Attention paths of tcvideo.clip.layers agree with the explicit float64 reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tcvideo.clip import layers



@pytest.fixture(autouse=True)
def _float64():
    """float64 references; restored afterwards so other modules in this process keep float32 defaults."""
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def _qkvb(nq: int, nk: int, seed: int = 0):
    r = np.random.default_rng(seed)
    q, k, v = (r.normal(size=(3, n, 4, 16)) for n in (nq, nk, nk))
    bias = r.normal(size=(1, 4, 1, nk)) * 2.0  # per-head, per-column, like TC's local/global bias
    return q, k, v, bias


@pytest.mark.parametrize("nq,nk,causal,with_bias", [(7, 7, False, False), (7, 7, True, False),
                                                    (7, 11, False, True), (9, 9, True, True)])
def test_head_major_matches_reference_float32(nq, nk, causal, with_bias):
    q, k, v, bias = _qkvb(nq, nk)
    bias = bias if with_bias else None
    want = layers.reference_attention(*(jnp.asarray(z) for z in (q, k, v)),
                                      bias=None if bias is None else jnp.asarray(bias), is_causal=causal)
    f32 = lambda z: None if z is None else jnp.asarray(z, jnp.float32)
    got = layers.head_major_attention(f32(q), f32(k), f32(v), bias=f32(bias), is_causal=causal)
    assert got.dtype == jnp.float32 and got.shape == (3, nq, 4, 16)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=2e-5)


def test_head_major_gradients_match_reference():
    q, k, v, bias = (jnp.asarray(z) for z in _qkvb(6, 10, seed=1))
    loss = lambda f: lambda q, k, v: (f(q, k, v, bias=bias) ** 2).sum()
    want = jax.grad(loss(layers.reference_attention), argnums=(0, 1, 2))(q, k, v)
    f32 = lambda z: z.astype(jnp.float32)
    got = jax.grad(loss(lambda q, k, v, bias: layers.head_major_attention(q, k, v, bias=f32(bias))),
                   argnums=(0, 1, 2))(f32(q), f32(k), f32(v))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5, rtol=1e-4)


def test_head_major_bfloat16_keeps_float32_softmax():
    q, k, v, bias = (jnp.asarray(z) for z in _qkvb(8, 12, seed=2))
    want = layers.reference_attention(q, k, v, bias=bias)
    bf = lambda z: z.astype(jnp.bfloat16)
    got = layers.head_major_attention(bf(q), bf(k), bf(v), bias=bias)
    assert got.dtype == jnp.bfloat16
    # bfloat16 inputs carry ~3 significant digits; a bfloat16 softmax would be far worse on these logits.
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want), atol=5e-2)


def test_attention_dispatch_on_cpu():
    """On CPU float32 attention is the head-major path; float64 stays on the reference path."""
    if jax.default_backend() != "cpu":
        pytest.skip("dispatch checked on CPU only")
    q, k, v, bias = (jnp.asarray(z) for z in _qkvb(5, 5, seed=3))
    f32 = lambda z: z.astype(jnp.float32)
    np.testing.assert_array_equal(np.asarray(layers.attention(f32(q), f32(k), f32(v), bias=f32(bias))),
                                  np.asarray(layers.head_major_attention(f32(q), f32(k), f32(v), bias=f32(bias))))
    np.testing.assert_array_equal(np.asarray(layers.attention(q, k, v, bias=bias)),
                                  np.asarray(layers.reference_attention(q, k, v, bias=bias)))
