"""VicTR: video-conditioned text representations (CVPR 2024) on tcvideo's CLIP.

``VicTR(config).apply({'params': p}, video [B, T, H, W, 3], ids [n, L])`` ->
``{'logits': [B, n], 'video_embedding': [B, E], 'text_features': [B, n, E], 'aux_features': [B, k, E],
'frame_embeddings': [B, T, E]}`` (features L2-normalised). The class text embeddings are re-computed
for every video, so ``text_features[i, c] != text_features[j, c]`` for two videos i != j (once the head
has trained). ``VicTR.head`` runs the video head on given CLIP embeddings (frames [B, T, E], texts [n + m, E]).

Pipeline (no public code exists; every choice the paper summary leaves open is marked *choice* and is
a ``VicTRConfig`` field; tcvideo/victr/README.md lists them):

1. Backbone: CLIP ViT per frame -> T projected frame embeddings v [B, T, E]; CLIP text tower on the n
   class prompts and the m auxiliary prompts (JSON ``{category: [texts]}``, see ``load_aux_prompts``)
   -> s [n + m, E]. The text tower runs once per step (not per video).
2. Token boosting: the text embeddings are copied once per frame and each copy is weighted by its
   frame-text affinity w(v_bt, s_k) -> T x (n + m) text tokens per video; concatenated with the
   visual tokens -> x [B, T, 1 + n + m, E] (index 0 = visual). *choice* ``affinity``:
   "softmax" (default): w = |group| * softmax over the texts of k's group of (tau * cos), the groups
   being the n class prompts and each auxiliary category (mean weight 1 per group; a frame boosts
   the classes it matches and damps the others); tau: ``affinity_scale`` "learned" (own parameter
   ``affinity_logit_scale``, starting at CLIP's logit scale) or "clip" (CLIP's logit scale itself);
   "shifted_cosine": w = (1 + cos) / 2 (for CLIP's cosines, ~0.15-0.35, a near-uniform x0.6).
   *choice*: a learned temporal position embedding [T, E] is added to every token (without one,
   temporal attention + temporal pooling could not tell frame order).
3. Video head, ``head_layers`` pre-LN layers of width E, each:
   a. cross-modal attention within a time step: the 1 + n + m tokens of one frame attend to each
      other (visual -> all text tokens of its frame; text -> the frame's visual token and all text);
   b. temporal attention: each token index attends to itself across the T frames; one set of
      parameters shared by the visual and the text tokens;
   c. affinity re-weighting: split, temporally pool the text tokens, recompute
      w(visual_bt, pooled_text_bk), multiply the text tokens by it, concatenate with the visual
      tokens and apply a residual MLP (x + MLP(LN(x))).
   ``attention="joint"`` replaces a + b by one attention over all T x (1 + n + m) tokens.
4. Classifier: tokens are pooled over time -> video embedding u [B, E], n action-text embeddings
   t [B, n, E], m auxiliary embeddings; *choice*: the auxiliary ones are averaged per semantic category
   -> g [B, k, E]. *choice* ``final_norm``: "none" (only the L2 normalisation of the cosines, on both
   sides) or "layernorm" (one LayerNorm shared by the visual and the text tokens). With cosine
   affinities A = cos(u, t) [B, n], G = cos(u, g) [B, k], H = cos(t, g) [B, n, k], s = exp(logit_scale)
   and a learned scalar ``aux_gate``:
     "affinity" (default): logits = s * (A + aux_gate * mean_j G_j H_:j)  (class affinity plus the
                           class-category affinities weighted by how strongly the video matches each);
     "visual":   logits = s * cos(u, CLIP text embedding)  (only the visual side of the head is used);
     "text":     logits = s * cos(t, q), q a learned vector [E]  (only the video-conditioned text).

Identity at initialisation (*choice* ``identity_init``, default on; ``init_params`` applies it): the
residual outputs of every head layer (attention ``out_proj``, MLP ``c_proj``), the time embedding and
``aux_gate`` start at zero. Every text token then stays a positive multiple of its CLIP embedding and
the visual token the CLIP frame embedding, so at step 0 the logits are CLIP's zero-shot logits
s * cos(mean_t v_bt, s_c) for the same video and classes (with ``final_norm="none"``). The head then
trains away from CLIP's solution instead of starting from a random map of CLIP's space.

Ablations (paper, Table 1 / 2): ``use_aux_text=False``; ``visual_embedding="clip"`` (u = mean of the
CLIP frame embeddings); ``text_embedding="clip"`` (t, g = the plain CLIP text embeddings, identical for
every video); ``attention="joint"``; ``reweight=False``; ``classifier`` as above.

Everything is batched over videos, frames and classes (einsum / reshape; no Python loop over them).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip.model import CLIPConfig, DictConfig, TextTransformer, VisionTransformer, get_config, l2_normalize
from tcvideo.clip.layers import MLP, LayerNorm, MultiHeadAttention

Array = jax.Array
Dtype = Any

ATTENTIONS = ("divided", "joint")
AFFINITIES = ("softmax", "shifted_cosine")
AFFINITY_SCALES = ("learned", "clip")
FINAL_NORMS = ("none", "layernorm")
CLASSIFIERS = ("affinity", "visual", "text")
EMBEDDINGS = ("victr", "clip")


# ----------------------------------------------------------------------------- auxiliary prompts

def load_aux_prompts(path: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """A JSON file ``{category: [text, ...]}`` (e.g. {"objects": ["a ball", ...], "scenes": [...]})
    -> (category names, texts per category), in file order. Raises ValueError naming the file."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read auxiliary prompts ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{path}: expected a non-empty JSON object {{category: [texts]}}")
    names, texts = [], []
    for cat, items in raw.items():
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}: category {cat!r} must map to a non-empty list of texts")
        for i, t in enumerate(items):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"{path}: category {cat!r} item {i} is not a non-empty string: {t!r}")
        names.append(str(cat))
        texts.append(tuple(t.strip() for t in items))
    return tuple(names), tuple(texts)


# ----------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class VicTRConfig(DictConfig):
    clip: CLIPConfig = CLIPConfig()
    num_frames: int = 16
    head_layers: int = 1
    head_heads: int = 0                    # 0 = max(1, embed_dim // 64)
    aux_categories: tuple[str, ...] = ()   # semantic categories of the auxiliary prompts
    aux_texts: tuple[tuple[str, ...], ...] = ()  # texts per category
    use_aux_text: bool = True
    attention: str = "divided"             # divided (cross-modal, then temporal) | joint
    reweight: bool = True                  # affinity re-weighting in every head layer
    affinity: str = "softmax"              # token-boosting / re-weighting weights (module docstring)
    affinity_scale: str = "learned"        # softmax temperature: learned (own parameter) | clip (logit_scale)
    identity_init: bool = True             # head starts as the identity on CLIP's space (module docstring)
    final_norm: str = "none"               # none | layernorm (shared by visual and text tokens)
    visual_embedding: str = "victr"        # victr (head output) | clip (mean CLIP frame embedding)
    text_embedding: str = "victr"          # victr (video-conditioned) | clip (plain CLIP text)
    classifier: str = "affinity"           # affinity | visual | text
    split_camel_case: bool = True
    prompt_context_length: int = 77        # token length of class and auxiliary prompts

    def __post_init__(self):
        if isinstance(self.clip, Mapping):
            object.__setattr__(self, "clip", CLIPConfig.from_dict(self.clip))
        if isinstance(self.clip, str):
            object.__setattr__(self, "clip", get_config(self.clip))
        object.__setattr__(self, "aux_categories", tuple(str(c) for c in self.aux_categories))
        object.__setattr__(self, "aux_texts", tuple(tuple(str(t) for t in ts) for ts in self.aux_texts))
        for name, allowed in (("attention", ATTENTIONS), ("affinity", AFFINITIES), ("classifier", CLASSIFIERS),
                              ("affinity_scale", AFFINITY_SCALES), ("final_norm", FINAL_NORMS),
                              ("visual_embedding", EMBEDDINGS), ("text_embedding", EMBEDDINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} not in {allowed}")
        if self.head_layers < 0:
            raise ValueError(f"head_layers={self.head_layers} must be >= 0")
        if self.num_frames < 1:
            raise ValueError(f"num_frames={self.num_frames} must be >= 1")
        if self.embed_heads < 1 or self.clip.embed_dim % self.embed_heads:
            raise ValueError(f"head_heads={self.head_heads} must divide embed_dim={self.clip.embed_dim}")
        if len(self.aux_categories) != len(self.aux_texts) or any(not ts for ts in self.aux_texts):
            raise ValueError("aux_texts must hold one non-empty tuple of texts per aux_categories entry")
        if not 1 <= self.prompt_context_length <= self.clip.context_length:
            raise ValueError(f"prompt_context_length={self.prompt_context_length} must be in "
                             f"1..{self.clip.context_length} (the text positional table)")

    @property
    def embed_heads(self) -> int:
        return self.head_heads or max(1, self.clip.embed_dim // 64)

    @property
    def num_aux(self) -> int:
        """m: auxiliary prompts actually used."""
        return sum(len(t) for t in self.aux_texts) if self.use_aux_text else 0

    def aux_ids(self) -> np.ndarray:
        """Token ids [m, prompt_context_length] of the auxiliary prompts (raises ValueError if too long)."""
        from tcvideo.clip.tokenizer import get_tokenizer
        texts = [t for ts in self.aux_texts for t in ts] if self.use_aux_text else []
        if not texts:
            return np.zeros((0, self.prompt_context_length), np.int32)
        return get_tokenizer().tokenize(texts, self.prompt_context_length)

    def aux_pooling(self) -> np.ndarray:
        """[k, m] averaging matrix: row j is 1/|category j| on that category's prompts."""
        if not self.use_aux_text:
            return np.zeros((0, 0), np.float32)
        sizes = [len(t) for t in self.aux_texts]
        cat = np.repeat(np.arange(len(sizes)), sizes)
        return (np.eye(len(sizes), dtype=np.float32)[:, cat] / np.asarray(sizes, np.float32)[:, None])

    def text_groups(self, n: int) -> np.ndarray:
        """[G, n + m] one-hot membership of the texts in their softmax groups: row 0 = the n class
        prompts, then one row per auxiliary category (each text in exactly one group)."""
        sizes = [n] + ([len(t) for t in self.aux_texts] if self.use_aux_text else [])
        group = np.repeat(np.arange(len(sizes)), sizes)
        return np.eye(len(sizes), dtype=np.float32)[:, group]



# ----------------------------------------------------------------------------- head pieces

def cosine(a: Array, b: Array, spec: str) -> Array:
    """Cosine similarities by an einsum ``spec`` over L2-normalised last axes (float32)."""
    a = l2_normalize(a.astype(jnp.float32))
    b = l2_normalize(b.astype(jnp.float32))
    return jnp.einsum(spec, a, b)


def affinity_weights(cos: Array, kind: str, scale: Array, groups: Array) -> Array:
    """Frame-text affinities cos [..., K] -> token weights [..., K] (see the module docstring).

    groups [G, K]: one-hot softmax groups (``VicTRConfig.text_groups``); "softmax" normalises within
    each group and multiplies by the group's size, so the weights of a group average 1."""
    if kind == "shifted_cosine":
        return 0.5 * (1.0 + cos)
    member = groups > 0                                                  # [G, K]
    z = jnp.where(member, (scale * cos)[..., None, :], -1e9)             # [..., G, K]
    p = jnp.where(member, jax.nn.softmax(z, axis=-1), 0.0).sum(-2)       # [..., K]: each k in one group
    return p * (groups.sum(-1) @ groups)                                 # x size of k's group


class TokenAttention(nn.Module):
    """Pre-LN residual self-attention among the tokens of axis ``axis`` of x [B, T, N, E].

    axis 2: within a time step (cross-modal); axis 1: across time for each token index (temporal);
    axis None: over all T x N tokens (joint). Other axes are folded into the batch, so a token can
    only see tokens that share its other indices.
    """

    width: int
    num_heads: int
    axis: Optional[int]
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, t, n, e = x.shape
        if self.axis is None:
            seq = x.reshape(b, t * n, e)
        elif self.axis == 2:
            seq = x.reshape(b * t, n, e)
        else:
            seq = x.transpose(0, 2, 1, 3).reshape(b * n, t, e)
        out = MultiHeadAttention(self.width, self.num_heads, name="attn", **kw)(LayerNorm(name="ln", **kw)(seq))
        if self.axis == 1:
            out = out.reshape(b, n, t, e).transpose(0, 2, 1, 3)
        return x + out.reshape(b, t, n, e).astype(x.dtype)


class VicTRLayer(nn.Module):
    """One video-head layer: cross-modal + temporal (or joint) attention, affinity re-weighting, MLP.
    x [B, T, 1 + K, E] (token 0 = visual), groups [G, K] -> same shape as x."""

    config: VicTRConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, scale: Array, groups: Array) -> Array:
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        e, h = c.clip.embed_dim, c.embed_heads
        if c.attention == "divided":
            x = TokenAttention(e, h, axis=2, name="cross_modal", **kw)(x)
            x = TokenAttention(e, h, axis=1, name="temporal", **kw)(x)  # shared by visual and text tokens
        else:
            x = TokenAttention(e, h, axis=None, name="joint", **kw)(x)
        if c.reweight:
            x = reweight(x, c.affinity, scale, groups)
        return x + MLP(e, name="mlp", **kw)(LayerNorm(name="ln_mlp", **kw)(x))


def reweight(x: Array, kind: str, scale: Array, groups: Array) -> Array:
    """Affinity re-weighting: x [B, T, 1 + K, E] -> same; text token (t, k) x w(visual_t, mean_t text_k)."""
    vis, txt = x[:, :, :1], x[:, :, 1:]
    pooled = txt.mean(axis=1)                                            # [B, K, E]
    w = affinity_weights(cosine(vis[:, :, 0], pooled, "bte,bke->btk"), kind, scale, groups)
    return jnp.concatenate([vis, txt * w[..., None].astype(txt.dtype)], axis=2)


# ----------------------------------------------------------------------------- model

class VicTR(nn.Module):
    """VicTR. video [B, T, H, W, 3], ids [n, L] -> dict (see the module docstring)."""

    config: VicTRConfig
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    remat: bool = False  # rematerialise text-tower blocks (training memory); outputs are unchanged

    def setup(self):
        c = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.visual = VisionTransformer(c.clip, name="visual", **kw)
        self.text = TextTransformer(c.clip, name="text", remat=self.remat, **kw)
        clip_scale = lambda *_: jnp.asarray(jnp.log(1 / 0.07), self.param_dtype)
        self.logit_scale = self.param("logit_scale", clip_scale)
        if c.affinity == "softmax" and c.affinity_scale == "learned":
            self.affinity_logit_scale = self.param("affinity_logit_scale", clip_scale)  # clip_init copies CLIP's
        e = c.clip.embed_dim
        self.time_embedding = self.param("time_embedding", nn.initializers.normal(0.02), (c.num_frames, e),
                                         self.param_dtype)
        self.head_layers = [VicTRLayer(c, name=f"head_{i}", **kw) for i in range(c.head_layers)]
        if c.final_norm == "layernorm":
            self.ln_final = LayerNorm(**kw)
        if c.classifier == "affinity" and c.num_aux:
            self.aux_gate = self.param("aux_gate", nn.initializers.ones, (), self.param_dtype)
        if c.classifier == "text":
            self.text_query = self.param("text_query", nn.initializers.normal(e ** -0.5), (e,), self.param_dtype)

    def encode_frames(self, video: Array) -> Array:
        """[B, T, H, W, 3] -> CLIP frame embeddings [B, T, E]."""
        b, t = video.shape[:2]
        return self.visual(video.reshape(b * t, *video.shape[2:]))[0].reshape(b, t, -1)

    def encode_text(self, ids: Array) -> Array:
        """Class ids [n, L] plus the auxiliary prompts -> CLIP text embeddings [n + m, E]."""
        aux = self.config.aux_ids()
        if aux.shape[0]:
            if aux.shape[1] != ids.shape[1]:
                raise ValueError(f"class prompts have {ids.shape[1]} tokens but auxiliary prompts "
                                 f"{aux.shape[1]} (prompt_context_length); they must match")
            ids = jnp.concatenate([ids, jnp.asarray(aux, ids.dtype)], axis=0)
        return self.text(ids)

    def affinity_scale(self) -> Array:
        """tau of the softmax affinity weights (float32 scalar)."""
        c = self.config
        raw = self.affinity_logit_scale if c.affinity == "softmax" and c.affinity_scale == "learned" \
            else self.logit_scale
        return jnp.exp(raw.astype(jnp.float32))

    def boost(self, frames: Array, text: Array, groups: Array) -> Array:
        """Token boosting: frames [B, T, E], text [K, E], groups [G, K] -> tokens [B, T, 1 + K, E]
        (+ time embedding)."""
        b, t, e = frames.shape
        if t != self.config.num_frames:
            raise ValueError(f"VicTR was built for {self.config.num_frames} frames, got a video of {t}")
        w = affinity_weights(cosine(frames, text, "bte,ke->btk"), self.config.affinity, self.affinity_scale(),
                             groups)
        txt = w[..., None].astype(frames.dtype) * text.astype(frames.dtype)   # [B, T, K, E]
        x = jnp.concatenate([frames[:, :, None], txt], axis=2)
        return x + self.time_embedding.astype(x.dtype)[None, :, None]

    def __call__(self, video: Array, ids: Array) -> dict:
        frames = self.encode_frames(video)                                 # [B, T, E]
        text = self.encode_text(ids)                                       # [n + m, E]
        return self.head(frames, text, ids.shape[0])

    def head(self, frames: Array, text: Array, n: int) -> dict:
        """The video head and classifier on CLIP embeddings: frames [B, T, E], text [n + m, E] (class
        prompts first) -> the output dict of ``__call__``."""
        c = self.config
        groups = jnp.asarray(c.text_groups(n))
        x = self.boost(frames, text, groups)
        for layer in self.head_layers:
            x = layer(x, self.affinity_scale(), groups)
        pooled = x.mean(axis=1)                                            # [B, 1 + K, E]
        if c.final_norm == "layernorm":
            pooled = self.ln_final(pooled)                                 # visual and text tokens alike
        b = frames.shape[0]
        u = frames.mean(axis=1) if c.visual_embedding == "clip" else pooled[:, 0]
        if c.text_embedding == "clip":
            txt = jnp.broadcast_to(text.astype(pooled.dtype), (b,) + text.shape)
        else:
            txt = pooled[:, 1:]
        actions = txt[:, :n]                                               # [B, n, E]
        aux = jnp.einsum("jm,bme->bje", jnp.asarray(c.aux_pooling(), txt.dtype), txt[:, n:])  # [B, k, E]
        logits = self.classify(u, actions, aux, text[:n])
        return {"logits": logits.astype(jnp.float32), "video_embedding": l2_normalize(u),
                "text_features": l2_normalize(actions), "aux_features": l2_normalize(aux),
                "frame_embeddings": frames}

    def classify(self, u: Array, actions: Array, aux: Array, clip_text: Array) -> Array:
        """u [B, E], actions [B, n, E], aux [B, k, E], clip_text [n, E] -> logits [B, n] (float32)."""
        kind = self.config.classifier
        scale = jnp.exp(self.logit_scale.astype(jnp.float32))
        if kind == "visual":
            return scale * cosine(u, clip_text, "be,ne->bn")
        if kind == "text":
            return scale * cosine(actions, self.text_query, "bne,e->bn")
        a = cosine(u, actions, "be,bne->bn")
        if aux.shape[1]:
            g = cosine(u, aux, "be,bje->bj")
            hcat = cosine(actions, aux, "bne,bje->bnj")
            a = a + self.aux_gate.astype(jnp.float32) * jnp.einsum("bj,bnj->bn", g, hcat) / aux.shape[1]
        return scale * a


# Parameters of the video head (the family's 'head' parameter group; zeroed by ``identity_init``).
HEAD_PARAMS = r"^(head_\d+|time_embedding|affinity_logit_scale|aux_gate|text_query|ln_final)(/|$)"
# Leaves set to zero by identity_init: the residual outputs of every head layer, the time embedding and
# the gate of the auxiliary term.
ZERO_AT_IDENTITY = r"^head_\d+/(cross_modal|temporal|joint)/attn/out_proj/|^head_\d+/mlp/c_proj/|" \
                   r"^time_embedding$|^aux_gate$"


def identity_init(params: Mapping[str, Any], config: VicTRConfig) -> dict:
    """Params with the ``ZERO_AT_IDENTITY`` leaves zeroed when ``config.identity_init`` (else unchanged):
    the head is then the identity on CLIP's space (module docstring)."""
    import re
    from tcvideo.core.tree_util import flatten, unflatten
    if not config.identity_init:
        return dict(params)
    rx = re.compile(ZERO_AT_IDENTITY)
    return unflatten({k: (np.zeros_like(np.asarray(v)) if rx.search(k) else v) for k, v in flatten(params).items()})


def init_params(config: VicTRConfig, rng: Optional[Array] = None, dtype: Dtype = jnp.float32,
                num_classes: int = 2) -> dict:
    """Random parameters (CLIP towers come from ``clip_init_params`` for real runs), with
    ``identity_init`` applied."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    c = config.clip
    video = jnp.zeros((1, config.num_frames, c.image_resolution, c.image_resolution, 3), dtype)
    ids = jnp.zeros((num_classes, config.prompt_context_length), jnp.int32)
    return identity_init(jax.jit(VicTR(config, param_dtype=dtype).init)(rng, video, ids)["params"], config)


def clip_init_params(clip_params: Mapping[str, Any], config: VicTRConfig, rng: Optional[Array] = None) -> dict:
    """VicTR parameters with the CLIP towers (``visual``, ``text``) and ``logit_scale`` copied from CLIP
    (``affinity_logit_scale`` starts at CLIP's logit scale too) and the video head from ``init_params``.
    Raises ValueError naming a missing or mis-shaped CLIP leaf."""
    from tcvideo.core.tree_util import flatten, unflatten
    src = {k: np.asarray(v) for k, v in flatten(clip_params).items()}
    from_clip = lambda path: path.startswith(("visual/", "text/")) or path == "logit_scale"
    for path, shape in flatten(jax.tree_util.tree_map(np.shape, param_shapes(config))).items():
        if from_clip(path) and (path not in src or src[path].shape != shape):
            got = src[path].shape if path in src else "missing"
            raise ValueError(f"CLIP parameters: {path} is {got}, VicTR needs {shape}")
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        rand = {k: np.asarray(v) for k, v in flatten(init_params(config, rng)).items()}
    out = {k: src[k].astype(np.float32) if from_clip(k) else v for k, v in rand.items()}
    if "affinity_logit_scale" in out:
        out["affinity_logit_scale"] = src["logit_scale"].astype(np.float32)
    return unflatten(out)


def param_shapes(config: VicTRConfig) -> dict:
    """Parameter shapes (jax.ShapeDtypeStruct) without computing anything."""
    c = config.clip
    video = jax.ShapeDtypeStruct((1, config.num_frames, c.image_resolution, c.image_resolution, 3), jnp.float32)
    ids = jax.ShapeDtypeStruct((2, config.prompt_context_length), jnp.int32)
    return jax.eval_shape(VicTR(config).init, jax.random.PRNGKey(0), video, ids)["params"]
