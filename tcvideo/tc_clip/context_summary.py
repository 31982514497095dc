"""Context summary: turning the seed tokens of a video into k context tokens (TC-CLIP step 6).

The default is bipartite soft matching (ToMe) applied repeatedly with the official schedule; the
paper's ablations (k-means, DPC-KNN, random merging, none) are the other entries of ``SUMMARIES``.
All functions work on one video, tokens [M, D], and are vmapped over the batch by the caller.
Shapes are static: every schedule is computed in Python from static token counts, so the whole
summary compiles once and runs without host round trips.

Accelerator shape: no sort, scatter or gather. Orders are ranks by pairwise comparison, index
look-ups are one-hot contractions, merges and the final assignment are 0/1-matrix matmuls.

Ties: ranks, like ``jax.lax.top_k``, and ``jnp.argmax`` put the lower index first on exactly equal values.
PyTorch's CPU ``argsort``/``topk`` follow no documented rule for ties, so on exact ties tcvideo's
choice is deterministic where the reference's is not.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def tome_schedule(num_tokens: int, k: int, r: int) -> list[int]:
    """Tokens merged per bipartite step to go from ``num_tokens`` to ``k`` (official schedule).

    ``int((n - k) / r)`` steps of ``min(r, n_i // 2)``, then steps of ``min(n_i - k, n_i // 2)``
    until k remain. E.g. (928, 96, 100) -> [100]*8 + [32]; (464, 96, 100) -> [100, 100, 100, 68].
    """
    if r <= 0:
        raise ValueError(f"tome_r must be positive, got {r}")
    n = num_tokens
    steps = []
    for _ in range(int((num_tokens - k) / r)):
        steps.append(min(r, n // 2))
        n -= steps[-1]
    while n > k:
        steps.append(min(n - k, n // 2))
        n -= steps[-1]
    return steps


class MergePlan(NamedTuple):
    """Indices of one bipartite step: A = x[0::2], B = x[1::2]; output = concat(A[unm], B')."""

    unm: Array  # [len_A - r] unmerged A indices, descending match score
    src: Array  # [r] merged A indices, descending match score
    dst: Array  # [r] the B index each src token goes to


# One-hot products must copy and add values exactly: no TF32 / single-pass bf16 rounding of float32 inputs.
_EXACT = jax.lax.Precision.HIGHEST


def descending_rank(v: Array) -> Array:
    """Position of every entry of v [..., n] in a stable descending sort, by pairwise comparison (no sort).

    Ties: the lower index comes first, as ``jax.lax.top_k`` orders them. -> int32 [..., n], a permutation.
    """
    n = v.shape[-1]
    idx = jnp.arange(n)
    vi, vj = v[..., :, None], v[..., None, :]
    ahead = (vj > vi) | ((vj == vi) & (idx[None, :] < idx[:, None]))  # [..., i, j]: j sorts before i
    return ahead.sum(-1, dtype=jnp.int32)


def lookup(table: Array, index: Array) -> Array:
    """table[index] for int arrays, table [n], index [...], as a one-hot contraction (no gather)."""
    hit = index[..., None] == jnp.arange(table.shape[-1])
    return jnp.where(hit, table, 0).sum(-1, dtype=table.dtype)


def order_from_rank(rank: Array, k: int) -> Array:
    """The indices of the k first entries of a rank permutation [..., n], in rank order -> int32 [..., k].

    Equal to ``jax.lax.top_k(v, k)[1]`` when ``rank = descending_rank(v)``.
    """
    hit = rank[..., None, :] == jnp.arange(k)[:, None]  # [..., k, n]
    return jnp.where(hit, jnp.arange(rank.shape[-1], dtype=jnp.int32), 0).sum(-1, dtype=jnp.int32)


def select_by_rank(rank: Array, x: Array, k: int) -> Array:
    """Rows of x [..., n, D] whose rank [..., n] is 0..k-1, in rank order, as a one-hot matmul -> [..., k, D]."""
    onehot = (rank[..., None, :] == jnp.arange(k)[:, None]).astype(x.dtype)  # [..., k, n]
    return jnp.einsum("...kn,...nd->...kd", onehot, x, precision=_EXACT)


def _interleave(even: Array, odd: Array) -> Array:
    """[e0, o0, e1, o1, ...] (len(even) is len(odd) or one more), without a scatter."""
    pairs = jnp.stack([even[: odd.shape[0]], odd], axis=-1).reshape(-1)
    return jnp.concatenate([pairs, even[odd.shape[0]:]])


def bipartite_step(sums: Array, r: int, need_sums: bool = True) -> tuple[Optional[Array], Array, MergePlan]:
    """The decisions of one bipartite step on token sums [M, D] (no gradient).

    Returns (sums of the M - r output tokens [M - r, D] or None, new index of every input token [M],
    the plan). The metric is the cosine of the size-weighted means, which equals the cosine of the
    sums (a positive size cancels in the normalisation). The merge is one matmul with a 0/1 matrix:
    output row p = sum of the A rows whose new index is p, plus B row p - (len_A - r).
    """
    metric = sums / jnp.linalg.norm(sums, axis=-1, keepdims=True)
    a, b = metric[0::2], metric[1::2]
    n_a, n_b = a.shape[0], b.shape[0]
    scores = a @ b.T  # [len_A, len_B]
    node_max = scores.max(axis=-1)
    node_idx = jnp.argmax(scores, axis=-1).astype(jnp.int32)
    rank = descending_rank(node_max)  # merge order; the r best-matched A tokens merge
    a_new = jnp.where(rank < r, n_a - r + node_idx, rank - r)  # [len_A]
    b_new = n_a - r + jnp.arange(n_b, dtype=jnp.int32)
    order = order_from_rank(rank, n_a)
    plan = MergePlan(unm=order[r:], src=order[:r], dst=lookup(node_idx, order[:r]))
    new_sums = None
    if need_sums:
        onehot = (a_new[None, :] == jnp.arange(n_a - r + n_b)[:, None]).astype(sums.dtype)  # [M - r, len_A]
        b_rows = jnp.concatenate([jnp.zeros((n_a - r, sums.shape[1]), sums.dtype), sums[1::2]])
        new_sums = jnp.matmul(onehot, sums[0::2], precision=_EXACT) + b_rows
    return new_sums, _interleave(a_new, b_new), plan


def apply_plan(plan: MergePlan, x: Array, size: Array) -> tuple[Array, Array]:
    """Size-weighted merge of a recorded plan (diagnostics, tests). x [M, D], size [M, 1] -> ([M - r, D], [M - r, 1])."""
    xs = x * size

    def merge(v: Array) -> Array:
        a, b = v[0::2], v[1::2]
        b = b.at[plan.dst].add(a[plan.src])
        return jnp.concatenate([a[plan.unm], b], axis=0)

    merged, new_size = merge(xs), merge(size)
    return merged / new_size, new_size


def bipartite_summary(tokens: Array, k: int, r: int) -> tuple[Array, Array, list[MergePlan]]:
    """Repeated bipartite soft matching. tokens [M, D] -> (context [k', D], sizes [k'], plans).

    k' = min(k, M). Sizes start at 1 for every call (every layer), as in the reference. The decisions
    are made step by step on stop-gradient sums; the composed assignment (seed -> context token) is
    then applied once: context = (0/1 matrix [k', M] @ tokens) / sizes, the only op gradients see.
    """
    steps = tome_schedule(tokens.shape[0], k, r)
    if not steps:
        return tokens, jnp.ones(tokens.shape[:1], tokens.dtype), []
    sums = jax.lax.stop_gradient(tokens)
    where = jnp.arange(tokens.shape[0], dtype=jnp.int32)  # current index of every seed
    plans = []
    for i, step_r in enumerate(steps):
        sums, step_new, plan = bipartite_step(sums, step_r, need_sums=i + 1 < len(steps))
        where = lookup(step_new, where)
        plans.append(plan)
    k_out = tokens.shape[0] - sum(steps)
    assign = (where[None, :] == jnp.arange(k_out)[:, None]).astype(tokens.dtype)  # [k', M]
    sizes = assign.sum(-1)
    context = jnp.matmul(assign, tokens, precision=_EXACT) / sizes[:, None]
    return context, sizes, plans


def _cluster_average(tokens: Array, assign: Array, k: int) -> tuple[Array, Array]:
    """Mean of the tokens of each cluster. tokens [M, D], assign [M] int -> ([k, D], sizes [k])."""
    onehot = jax.nn.one_hot(jax.lax.stop_gradient(assign), k, dtype=tokens.dtype)  # [M, k]
    sizes = onehot.sum(0)
    sums = onehot.T @ tokens
    return sums / jnp.maximum(sizes, 1)[:, None], sizes


def _cosine(a: Array, b: Array) -> Array:
    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def kmeans_summary(tokens: Array, k: int, iters: int = 10) -> tuple[Array, Array]:
    """Cosine k-means, centres initialised at k evenly spaced tokens. [M, D] -> ([k, D], [k])."""
    m = tokens.shape[0]
    k = min(k, m)
    metric = jax.lax.stop_gradient(tokens)
    centres = metric[jnp.linspace(0, m - 1, k).astype(jnp.int32)]

    def step(c, _):
        assign = jnp.argmax(_cosine(metric, c), axis=-1)
        new_c, sizes = _cluster_average(metric, assign, k)
        return jnp.where(sizes[:, None] > 0, new_c, c), None

    centres, _ = jax.lax.scan(step, centres, None, length=iters)
    assign = jnp.argmax(_cosine(metric, centres), axis=-1)
    return _cluster_average(tokens, assign, k)


def dpc_knn_summary(tokens: Array, k: int, knn: int = 5) -> tuple[Array, Array]:
    """Density-peaks clustering with k-nearest-neighbour density (as in TCFormer). [M, D] -> ([k, D], [k])."""
    m, d = tokens.shape
    k = min(k, m)
    knn = min(knn, m - 1) if m > 1 else 1
    metric = jax.lax.stop_gradient(tokens)
    sq = (metric * metric).sum(-1)
    dist = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2 * metric @ metric.T, 0)) / jnp.sqrt(d)
    nearest = -jax.lax.top_k(-dist, knn + 1)[0][:, 1:]  # skip self
    density = jnp.exp(-(nearest ** 2).mean(-1))
    # Tiny deterministic jitter breaks density ties between identical tokens.
    density = density + jnp.arange(m, dtype=density.dtype) * jnp.finfo(density.dtype).eps
    higher = density[None, :] > density[:, None]
    dmax = dist.max()
    delta = jnp.where(higher, dist, dmax).min(-1)
    _, centres = jax.lax.top_k(density * delta, k)
    assign = jnp.argmin(dist[:, centres], axis=-1)
    assign = assign.at[centres].set(jnp.arange(k))  # a centre always belongs to its own cluster
    return _cluster_average(tokens, assign, k)


def random_summary(tokens: Array, k: int, rng: Optional[Array] = None) -> tuple[Array, Array]:
    """Random merging: a random partition of the tokens into k near-equal groups, averaged."""
    m = tokens.shape[0]
    k = min(k, m)
    rng = jax.random.PRNGKey(0) if rng is None else rng
    perm = jax.random.permutation(rng, m)
    assign = jnp.zeros((m,), jnp.int32).at[perm].set(jnp.arange(m) % k)
    return _cluster_average(tokens, assign, k)


def no_summary(tokens: Array) -> tuple[Array, Array]:
    """Seed tokens used directly as context tokens. [M, D] -> ([M, D], ones [M])."""
    return tokens, jnp.ones(tokens.shape[:1], tokens.dtype)


SUMMARIES = ("bipartite", "kmeans", "dpc_knn", "random", "none")


def summarize(method: str, tokens: Array, k: int, r: int, rng: Optional[Array] = None
              ) -> tuple[Array, Array, list[MergePlan]]:
    """Dispatch to a summary. tokens [M, D] -> (context [k', D], sizes [k'], bipartite plans or [])."""
    if method == "bipartite":
        return bipartite_summary(tokens, k, r)
    if method == "kmeans":
        return (*kmeans_summary(tokens, k), [])
    if method == "dpc_knn":
        return (*dpc_knn_summary(tokens, k), [])
    if method == "random":
        return (*random_summary(tokens, k, rng), [])
    if method == "none":
        return (*no_summary(tokens), [])
    raise ValueError(f"context_summary must be one of {sorted(SUMMARIES)}, got {method!r}")
