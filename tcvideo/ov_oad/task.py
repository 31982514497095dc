"""OV-OAD as a task of the one trainer: video-text pre-training on 32-frame feature windows (no frame labels)
and per-frame online-detection evaluation (mAP / calibrated mAP) with classes given as text.

Config: ``config.task = "ov_oad"`` and the ``config.ov_oad`` sub-config (``default_ov_oad_config``):
model fields (``OVOADConfig``), the text tower (a CLIP preset + overrides), the training videos (synthetic
or feature files + annotations), the caption style, the loss weights and the evaluation targets.

Losses (weights from the released config): matching InfoNCE (video vs caption 0), multi-label
(video vs captions 1..M, soft targets 1/M, separate logit scale), current-frame InfoNCE (enc_feat @
saliency projector vs the un-projected text feature of the last frame's caption; alpha = 0.1) and the
background-mask dice loss (beta = 1).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterator, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tcvideo.ov_oad import model as oad, stream as oad_stream
from tcvideo.core.registry import register_task
from tcvideo.core.sharding import global_array, make_mesh, process_share, replicated_value
from tcvideo.core.task import Task
from tcvideo.core.config import ConfigError

DATA_SOURCES = ("synthetic", "files")


def default_ov_oad_config() -> ml_collections.ConfigDict:
    """``config.ov_oad``: everything OV-OAD-specific (the released recipe's values)."""
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict()  # OVOADConfig field overrides (feature_dim, window, adapters, ...)
    c.text = "ViT-B/16"  # CLIP preset of the text tower
    c.text_overrides = ml_collections.ConfigDict()  # CLIPConfig fields replacing the preset's
    c.context_length = 77
    c.caption_mode = "class_tags"  # class_tags (ActivityNet prompts) | captions (InternVid-style)
    c.caption_prompt = "a video of a person {}"
    c.num_extra_captions = 2
    c.exclude_last = 8
    c.loss = ml_collections.ConfigDict(dict(match=1.0, multi_label=1.0, current=0.1, mask=1.0))
    # The released dice term is sum over a GPU's windows / W, averaged over GPUs by DDP: per window it weighs
    # (per-GPU batch) / W. tcvideo's loss sees the global batch, so it divides the sum by
    # W * batch / dice_per_device_batch (released: 32 per GPU, W = 32: the mean over windows). 0: sum / W.
    c.dice_per_device_batch = 32
    # Contrastive negatives: 'global_batch' (released: every caption of the global batch, gathered over the
    # GPUs) refuses a config whose gradient accumulation would split the batch; 'micro_batch' accepts that
    # each loss sees batch_size / accumulation windows.
    c.negatives = "global_batch"
    c.require_clip = True  # the released recipe starts the text tower / saliency projector from CLIP (init_clip)

    c.train = ml_collections.ConfigDict()
    c.train.source = "synthetic"  # synthetic | files
    c.train.features = ""  # files: directory of per-video feature files (or a TFDS dataset dir)
    c.train.annotations = ""  # files: annotation / caption file
    c.train.annotation_format = "activitynet"  # activitynet | captions | thumos14 | tvseries
    c.train.subset = ("training", "validation")  # ActivityNet subset(s): the released pre-training reads both

    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.classes = ("jumping", "running", "swimming", "cooking")
    c.synthetic.train_videos = 16
    c.synthetic.test_videos = 6
    c.synthetic.num_frames = 160
    c.synthetic.noise = 1.0
    c.synthetic.seed = 0

    c.eval = ml_collections.ConfigDict()
    c.eval.prompt = "A photo of action {}."
    c.eval.batch_size = 64  # windows per scoring call
    c.eval.drop_ambiguous_windows = False  # released THUMOS protocol drops them; standard OAD does not
    # The released loaders score frame t only when frames t-W+1..t exist (a full window) and t < T - 8
    # (their window range ends at T - dec_steps): frames outside are left out of the metric.
    c.eval.full_windows_only = True
    c.eval.drop_last_frames = 8  # dec_steps of the released loaders; 0 scores to the last frame
    # name -> ConfigDict(source=synthetic|files, features=, annotations=, annotation_format=, classes=(...),
    # prompt_names=(...) or prompt_names_file= (the class names written into the prompts, in the order of
    # `classes`; default: `classes`), zero_shot_pool= means|single ('' = the model's), subset=,
    # metric=mAP|mcAP). Empty: the synthetic test split.
    c.eval.targets = ml_collections.ConfigDict()
    c.eval.max_videos = 0  # > 0: only the first N videos of each target (quick in-training evals)
    return c


def ov_oad_model_config(config) -> oad.OVOADConfig:
    """The OVOADConfig of a training config (ConfigError naming the field)."""
    from tcvideo.clip.model import CLIPConfig, PRESETS
    o = config.ov_oad
    if o.text not in PRESETS:
        raise ConfigError(f"config.ov_oad.text: unknown CLIP preset {o.text!r}; known: {sorted(PRESETS)}")
    try:
        text = CLIPConfig.from_dict({**PRESETS[o.text].to_dict(), **o.text_overrides.to_dict()})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config.ov_oad.text_overrides: {str(e).splitlines()[0]}") from e
    if o.context_length > text.context_length:
        raise ConfigError(f"config.ov_oad.context_length: {o.context_length} > the text tower's {text.context_length}")
    try:
        return oad.OVOADConfig.from_dict({**o.model.to_dict(), "text": text})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config.ov_oad.model: {str(e).splitlines()[0]}") from e


# ----------------------------------------------------------------------------- losses

def _f(x: jax.Array) -> jax.Array:
    """Loss arithmetic in >= float32 (float64 stays float64 for the parity tests)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _ce(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean over rows of -sum(targets * log_softmax(logits))."""
    return -(targets * jax.nn.log_softmax(_f(logits), -1)).sum(-1).mean()


def contrastive_loss(a: jax.Array, b: jax.Array, scale: jax.Array) -> jax.Array:
    """Symmetric InfoNCE between rows of a [B, E] and b [B, E] (L2-normalised inside); pairs on the diagonal."""
    a, b = oad.l2n(_f(a)), oad.l2n(_f(b))
    logits = scale * a @ b.T
    eye = jnp.eye(a.shape[0], dtype=logits.dtype)
    return 0.5 * (_ce(logits, eye) + _ce(logits.T, eye))


def multi_label_loss(video: jax.Array, texts: jax.Array, scale: jax.Array) -> jax.Array:
    """video [B, E] against texts [B, M, E] (caption m of video b). Video -> all B*M texts with soft targets
    1/M on its own M captions; each text -> the B videos with a one-hot target; mean of the two."""
    b, m, _ = texts.shape
    v = oad.l2n(_f(video))
    t = oad.l2n(_f(texts)).reshape(b * m, -1)
    logits = scale * v @ t.T  # [B, B*M]
    own = jnp.repeat(jnp.eye(b, dtype=logits.dtype), m, axis=1)  # [B, B*M]
    return 0.5 * (_ce(logits, own / m) + _ce(logits.T, own.T))


def dice_loss(pred: jax.Array, target: jax.Array, num_masks: float) -> jax.Array:
    """sum_b [1 - (2 sum_w p t + 1) / (sum_w p + sum_w t + 1)] / num_masks. pred, target [B, W] in [0, 1]."""
    p = _f(pred)
    t = target.astype(p.dtype)
    per = 1.0 - (2.0 * (p * t).sum(-1) + 1.0) / (p.sum(-1) + t.sum(-1) + 1.0)
    return per.sum() / num_masks


def _forward(mdl: oad.OVOAD, feats, caption_ids, current_ids, deterministic=False, gumbel=None, gumbel_noise=None):
    """Everything the losses need, in one apply (training: dropout, drop-path, Gumbel noise)."""
    out = mdl.encode_video(feats, deterministic=deterministic, gumbel=gumbel, gumbel_noise=gumbel_noise)
    b, m1, length = caption_ids.shape
    txt = mdl.encode_text(jnp.concatenate([caption_ids.reshape(b * m1, length), current_ids], axis=0),
                          deterministic=deterministic)
    cap = mdl.project_text(txt[:b * m1]).reshape(b, m1, -1)
    res = {"video": mdl.project_video(out["video"]), "captions": cap, "saliency": mdl.saliency(out["enc_feat"]),
           "current_text": txt[b * m1:], "q": out["q"], "k": out["k"], "scale": mdl.scale(),
           "ml_scale": mdl.multi_label_scale()}
    if mdl.config.mask_mode == "paper":
        res["mask_pred"] = oad.paper_mask_prediction(out["soft"], mdl.project_video(out["groups"]), cap[:, 0])
    return res


def ov_oad_losses(model: oad.OVOAD, params, batch: dict, rng: jax.Array, weights, num_masks: float,
                  dtype=jnp.float32, *, deterministic: bool = False, gumbel: Optional[bool] = None,
                  gumbel_noise: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """-> (weighted total, {each loss}). batch: features [B, W, D], caption_ids [B, 1+M, L],
    current_ids [B, L], caption_mask [B, W]. ``deterministic`` turns dropout / drop-path off; ``gumbel``
    (default: not deterministic) and ``gumbel_noise`` [B, G', W] set the assignment (see encode_video)."""
    r_drop, r_gumbel = jax.random.split(rng)
    o = nn.apply(_forward, model)({"params": params}, batch["features"].astype(dtype), batch["caption_ids"],
                                  batch["current_ids"], deterministic, gumbel, gumbel_noise,
                                  rngs={"dropout": r_drop, "gumbel": r_gumbel})
    losses = {"match": contrastive_loss(o["video"], o["captions"][:, 0], o["scale"])}
    losses["multi_label"] = (multi_label_loss(o["video"], o["captions"][:, 1:], o["ml_scale"])
                             if o["captions"].shape[1] > 1 else jnp.zeros((), losses["match"].dtype))
    losses["current"] = contrastive_loss(o["saliency"], o["current_text"], o["scale"])
    pred = o["mask_pred"] if "mask_pred" in o else oad.mask_prediction(o["q"], o["k"])
    losses["mask"] = dice_loss(pred, batch["caption_mask"], num_masks)
    total = sum(weights[k] * v for k, v in losses.items())
    return total, losses


# ----------------------------------------------------------------------------- data

def load_videos(spec, *, split: str, synthetic, feature_dim: int, class_names=None) -> list:
    """OADVideos of a train / eval target. ``spec``: source, features, annotations, annotation_format, subset."""
    from data_pipelines.temporal import synthetic as syn
    if spec.source == "synthetic":
        n = synthetic.train_videos if split == "train" else synthetic.test_videos
        return syn.make_videos(n, split=split, classes=tuple(synthetic.classes), num_frames=synthetic.num_frames,
                               dim=feature_dim, noise=synthetic.noise, seed=synthetic.seed)
    from data_pipelines.temporal import annotations as ann, features as feat
    segs = ann.load_segments(spec.annotations, spec.annotation_format, subset=spec.get("subset", None),
                             class_names=class_names)
    return feat.load_videos(spec.features, segs, feature_dim=feature_dim)


def _check_files(prefix: str, spec) -> None:
    """ConfigError naming the field when a 'files' source lacks its feature dir / annotation file."""
    from data_pipelines.temporal.annotations import FORMATS
    for field in ("features", "annotations"):
        path = spec.get(field, "")
        if not path or not os.path.exists(path):
            raise ConfigError(f"{prefix}.{field}: no such file or directory {path!r}")
    if spec.get("annotation_format", "") not in FORMATS:
        raise ConfigError(f"{prefix}.annotation_format: {spec.get('annotation_format', '')!r} not in {FORMATS}")


# ----------------------------------------------------------------------------- sharded evaluation

def assemble_frames(per_process: Sequence[np.ndarray], positions: Sequence[np.ndarray], num_frames: int
                    ) -> np.ndarray:
    """Rows of every process (per_process[p] [n, ...], positions[p] [n], -1 = padding) -> [num_frames, ...]
    in frame order; padding rows are dropped (not written to frame -1)."""
    first = np.asarray(per_process[0])
    out = np.full((num_frames,) + first.shape[1:], np.nan, first.dtype)
    for rows, pos in zip(per_process, positions):
        keep = np.asarray(pos) >= 0
        out[pos[keep]] = np.asarray(rows)[keep]
    return out


def _local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a global array sharded over 'data' [B, ...] -> [B // process_count, ...], in
    the order the process gave them to ``global_array``."""
    if x.is_fully_addressable:
        return np.asarray(x)
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def _gather_processes(local: np.ndarray) -> list[np.ndarray]:
    """Every process's ``local`` [n, ...] (the same n everywhere), process 0 first."""
    if jax.process_count() == 1:
        return [local]
    from jax.experimental import multihost_utils
    return list(np.asarray(multihost_utils.process_allgather(local)))


@register_task("ov_oad")
class OVOADTask(Task):
    """Video-text pre-training of OV-OAD and its per-frame open-vocabulary detection evaluation."""

    def __init__(self, config):
        super().__init__(config)
        if "ov_oad" not in config:
            raise ConfigError("config.ov_oad: missing; start from configs/ov_oad/common.py (ov_oad_base_config)")
        o = config.ov_oad
        self.mc = ov_oad_model_config(config)
        if o.caption_mode not in ("class_tags", "captions"):
            raise ConfigError(f"config.ov_oad.caption_mode: {o.caption_mode!r} not in ('class_tags', 'captions')")
        if o.train.source not in DATA_SOURCES:
            raise ConfigError(f"config.ov_oad.train.source: {o.train.source!r} not in {DATA_SOURCES}")
        for k in ("match", "multi_label", "current", "mask"):
            if k not in o.loss:
                raise ConfigError(f"config.ov_oad.loss.{k}: missing")
        if o.train.source == "files":
            _check_files("config.ov_oad.train", o.train)
        for name, t in self._targets().items():
            if t.source == "files":
                _check_files(f"config.ov_oad.eval.targets.{name}", t)
            if t.source not in DATA_SOURCES:
                raise ConfigError(f"config.ov_oad.eval.targets.{name}.source: {t.source!r} not in {DATA_SOURCES}")
            if t.get("zero_shot_pool", "") not in ("", *oad.ZERO_SHOT_POOLS):
                raise ConfigError(f"config.ov_oad.eval.targets.{name}.zero_shot_pool: {t.zero_shot_pool!r} not in "
                                  f"{oad.ZERO_SHOT_POOLS}")
            classes = list(t.get("classes", ())) or [None] * (1 + len(o.synthetic.classes))
            prompt_names(f"config.ov_oad.eval.targets.{name}", t, classes)  # a bad file fails before any compute
            if t.get("metric", "mAP") not in ("mAP", "mcAP"):
                raise ConfigError(f"config.ov_oad.eval.targets.{name}.metric: {t.metric!r} not in ('mAP', 'mcAP')")
        if o.negatives not in ("global_batch", "micro_batch"):
            raise ConfigError(f"config.ov_oad.negatives: {o.negatives!r} not in ('global_batch', 'micro_batch')")
        accum = accumulation_steps(config, jax.device_count())
        if accum > 1 and o.negatives == "global_batch":
            raise ConfigError(
                f"config.per_device_batch_size: batch_size {config.batch_size} on {jax.device_count()} device(s) with "
                f"per_device_batch_size {config.per_device_batch_size} (grad_accum_steps {config.grad_accum_steps}) "
                f"accumulates over {accum} micro-batches, so each contrastive loss would see {config.batch_size // accum} "
                "negatives instead of the global batch; raise per_device_batch_size (OV-OAD is small) or set "
                "config.ov_oad.negatives = 'micro_batch' to accept it")
        if o.require_clip and not (config.init_clip or config.init_checkpoint):
            raise ConfigError("config.init_clip: the released recipe starts OV-OAD's text tower, saliency projector "
                              "and zero-shot branch from CLIP ViT-B/16; name the CLIP model directory / .pt here "
                              "(or set config.ov_oad.require_clip = False to train them from random weights)")
        self.model = oad.OVOAD(self.mc, dtype=self.compute_dtype)
        self._sampler = None
        self._default_mesh: Optional[Mesh] = None  # evaluate() without a mesh: all devices (see _on_mesh)
        self._replicated: Optional[NamedSharding] = None
        self.num_train_examples = len(self.sampler)

    # -- data
    @property
    def sampler(self):
        if self._sampler is None:
            from data_pipelines.temporal.windows import WindowSampler
            from tcvideo.clip.tokenizer import get_tokenizer
            o = self.config.ov_oad
            videos = load_videos(o.train, split="train", synthetic=o.synthetic, feature_dim=self.mc.feature_dim)
            tok = get_tokenizer()
            self._sampler = WindowSampler(videos, window=self.mc.window, mode=o.caption_mode,
                                          num_extra=o.num_extra_captions, exclude_last=o.exclude_last,
                                          prompt=o.caption_prompt,
                                          tokenize=lambda texts: tok.tokenize(texts, o.context_length, truncate=True))
        return self._sampler

    def train_iterator(self, *, global_batch_size: int, seed: int, start_step: int, process_index: int,
                       process_count: int) -> Iterator[dict]:
        return self.sampler.iterator(global_batch_size=global_batch_size, seed=seed, start_step=start_step,
                                     process_index=process_index, process_count=process_count)

    # -- params
    def init_params(self) -> dict:
        with jax.default_device(jax.local_devices(backend="cpu")[0]):
            p = oad.init_params(self.mc, jax.random.PRNGKey(self.config.seed), self.config.ov_oad.context_length)
        p = jax.tree_util.tree_map(np.asarray, p)
        if self.config.init_checkpoint:
            from tcvideo.core import model_dir as store
            params, _ = store.load_model(self.config.init_checkpoint)
            return jax.tree_util.tree_map(np.asarray, params)
        if self.config.init_clip:
            p = clip_initialised(p, self.mc, self.config.init_clip)
        return p

    def param_rules(self):
        # The frozen zero-shot CLIP towers and CLIP's token embedding; the text projection is unused
        # (OV-OAD's text tower stops before it); no weight decay on 1-D params / biases (released recipe).
        return (("^zs_", "frozen"), ("^text/token_embedding", "frozen"), ("^text/text_projection", "frozen"),
                ("(^|/)(bias|scale|in_proj_bias)$", "no_decay"), ("^(logit_scale|multi_label_logit_scale)$", "no_decay"))

    # -- loss
    def dice_divisor(self, rows: int) -> float:
        """The dice loss divisor for a loss over ``rows`` windows (see config.ov_oad.dice_per_device_batch)."""
        per_device = self.config.ov_oad.dice_per_device_batch
        return float(self.mc.window * (rows / per_device if per_device else 1))

    def loss(self, params, batch, rng):
        return ov_oad_losses(self.model, params, batch, rng, dict(self.config.ov_oad.loss),
                             self.dice_divisor(batch["features"].shape[0]), self.compute_dtype)

    # -- evaluation
    def _targets(self) -> dict:
        o = self.config.ov_oad
        if len(o.eval.targets):
            return {k: v for k, v in o.eval.targets.items()}
        t = ml_collections.ConfigDict(dict(source="synthetic", metric="mAP"))
        return {"synthetic": t}

    def eval_batch_size(self, mesh: Mesh) -> int:
        """Windows per global scoring batch: config.ov_oad.eval.batch_size rounded up to a multiple of the
        mesh size (the batch is split evenly over 'data')."""
        n = mesh.devices.size
        bs = -(-int(self.config.ov_oad.eval.batch_size) // n) * n
        if bs % jax.process_count():
            raise ConfigError(f"config.ov_oad.eval.batch_size: {bs} windows do not split over "
                              f"{jax.process_count()} processes")
        return bs

    def _on_mesh(self, params, params_sharding, mesh: Optional[Mesh]):
        """(mesh, params sharding, params) for evaluate: the trainer's as given; called without them (host
        params, e.g. before training) the params are replicated on a mesh of all devices, kept by the task
        so that repeated calls reuse one compilation."""
        if mesh is not None and params_sharding is not None:
            return mesh, params_sharding, params
        if mesh is None:
            if self._default_mesh is None:
                self._default_mesh = make_mesh()
            mesh = self._default_mesh
        if self._replicated is None or self._replicated.mesh is not mesh:
            self._replicated = NamedSharding(mesh, P())
        rep = self._replicated
        return mesh, rep, jax.tree_util.tree_map(lambda x: replicated_value(np.asarray(x), rep), params)

    def _vocabulary_fn(self, mesh: Mesh, params_sharding):
        """Jitted (params, ids [C, L]) -> class embeddings, replicated on the mesh."""
        rep = NamedSharding(mesh, P())
        return self.jit_once("ov_oad_vocabulary", mesh, params_sharding, lambda: jax.jit(
            functools.partial(oad_stream.class_vocabulary, self.model), in_shardings=(params_sharding, rep),
            out_shardings=rep))

    def _score_step(self, mesh: Mesh, params_sharding, pool: Optional[str] = None):
        """Jitted (params, vocab, windows [B, W, D], mask [B]) -> last-frame scores [B, C] sharded over
        'data' (NaN on padding rows, so that one taken for a frame cannot pass unnoticed). ``pool``: the
        plain-CLIP prior's pooling when it differs from the model config's (one compilation per pool)."""
        rep, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
        pool = pool or self.mc.zero_shot_pool
        model = self.model if pool == self.mc.zero_shot_pool else oad.OVOAD(
            dataclasses.replace(self.mc, zero_shot_pool=pool), dtype=self.compute_dtype)

        def step(params, vocab, windows, mask):
            s = oad_stream.window_scores(model, params, windows, vocab)
            return jnp.where(mask[:, None], s, jnp.nan)

        name = "ov_oad_scores" if pool == self.mc.zero_shot_pool else f"ov_oad_scores_{pool}"
        return self.jit_once(name, mesh, params_sharding, lambda: jax.jit(
            step, in_shardings=(params_sharding, rep, data_sh, data_sh), out_shardings=data_sh))

    def eval_step_compilations(self) -> int:
        cached = self._jitted.get("ov_oad_scores")
        return 0 if cached is None else int(cached[2]._cache_size())

    def class_vocabulary(self, params, params_sharding, mesh: Mesh, classes: Sequence[str]) -> dict:
        """Class embeddings of ``classes`` with the eval prompt, computed once on the mesh (replicated)."""
        o = self.config.ov_oad
        ids = oad_stream.tokenize_classes(classes, o.context_length, o.eval.prompt)
        return self._vocabulary_fn(mesh, params_sharding)(params, replicated_value(ids, NamedSharding(mesh, P())))

    def score_frames(self, params, params_sharding, mesh: Mesh, features: Sequence[np.ndarray], vocab: dict,
                     pool: Optional[str] = None) -> np.ndarray:
        """Per-frame scores [sum_v T_v, C] of videos ``features`` ([T_v, D] each), frame t of a video scored
        from its frames <= t (``score_video``'s function), on every process.

        The windows go through the mesh in global batches of ``eval_batch_size`` sharded over 'data'; each
        process builds only its rows (``core.sharding.process_share``) and the scores meet only here, for the metric."""
        windows = oad_stream.VideoWindows(features, self.mc.window, self.mc.feature_dim)
        step = self._score_step(mesh, params_sharding, pool)
        data_sh = NamedSharding(mesh, P("data"))
        pc, pi = jax.process_count(), jax.process_index()
        local_batch = self.eval_batch_size(mesh) // pc
        pos, num_batches = process_share(len(windows), local_batch, pi, pc)
        outs = []  # device results, read once at the end: no host sync per batch
        for k in range(num_batches):
            rows = pos[k * local_batch:(k + 1) * local_batch]
            outs.append(step(params, vocab, global_array(windows.rows(rows), data_sh), global_array(rows >= 0, data_sh)))
        num_classes = int(vocab["proj"].shape[0])
        local = (np.concatenate([_local_rows(o) for o in outs]) if outs
                 else np.zeros((0, num_classes), np.float32))
        every = [process_share(len(windows), local_batch, q, pc)[0] for q in range(pc)]
        return assemble_frames(_gather_processes(local), every, len(windows))

    def evaluate(self, params, params_sharding=None, mesh=None, *, during_training: bool = False) -> dict:
        """mAP / mcAP of every eval target. params stay on the mesh as ``params_sharding`` places them
        (without a mesh: replicated on all devices). ``during_training`` changes nothing here; in-training
        evaluations are made cheap with config.ov_oad.eval.max_videos, which applies to both."""
        from data_pipelines.temporal.video import BACKGROUND, frame_labels
        from tcvideo.ov_oad import metrics as oad_metrics
        o = self.config.ov_oad
        mesh, params_sharding, params = self._on_mesh(params, params_sharding, mesh)
        results = {}
        for name, t in self._targets().items():
            classes = list(t.get("classes", ())) or [BACKGROUND, *o.synthetic.classes]
            videos = load_videos(t, split="test", synthetic=o.synthetic, feature_dim=self.mc.feature_dim,
                                 class_names=classes)
            if o.eval.max_videos:
                videos = videos[:o.eval.max_videos]
            prompts = prompt_names(f"config.ov_oad.eval.targets.{name}", t, classes)
            vocab = self.class_vocabulary(params, params_sharding, mesh, prompts)
            s = self.score_frames(params, params_sharding, mesh, [v.features for v in videos], vocab,
                                  t.get("zero_shot_pool", "") or None)
            labels, keep = [], []
            for v in videos:
                lab, amb = frame_labels(v, classes)
                labels.append(lab)
                k = scored_frames(len(lab), self.mc.window, o.eval.full_windows_only, o.eval.drop_last_frames)
                if o.eval.drop_ambiguous_windows:
                    k &= oad_metrics.ambiguous_window_mask(amb, self.mc.window)
                keep.append(k)
            y, k = np.concatenate(labels), np.concatenate(keep)
            m = oad_metrics.per_frame_map(s, y, class_names=classes, valid=k)
            c = oad_metrics.per_frame_map(s, y, class_names=classes, valid=k, calibrated=True)
            results[name] = {"mAP": m["mAP"], "mcAP": c["mcAP"], "frames": int(k.sum()), "videos": len(videos),
                             "metric": t.get("metric", "mAP"), "per_class_AP": m["per_class"]}
        first = next(iter(results.values()))
        return {"results": results, "summary": {}, "primary": float(first[first["metric"]])}

    def format_results(self, out: dict) -> str:
        lines = [f"{'target':<24}{'videos':>8}{'frames':>9}{'mAP':>8}{'mcAP':>8}"]
        for name, r in out["results"].items():
            lines.append(f"{name:<24}{r['videos']:>8}{r['frames']:>9}{r['mAP']:>8.2f}{r['mcAP']:>8.2f}")
        return "\n".join(lines)


def accumulation_steps(config, num_devices: int) -> int:
    """Micro-batches per step, as the trainer computes them (tcvideo/core/train.py)."""
    return int(config.grad_accum_steps or max(1, config.batch_size // (config.per_device_batch_size * num_devices)))


def prompt_names(prefix: str, target, classes: Sequence[str]) -> list[str]:
    """The class names written into the eval prompts, in the order of ``classes``: the lines of
    ``target.prompt_names_file``, else ``target.prompt_names``, else ``classes`` themselves. ConfigError
    naming the field when the file is missing or the count differs."""
    path = target.get("prompt_names_file", "")
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"{prefix}.prompt_names_file: no such file {path!r}")
        with open(path) as f:
            names, field = [line.strip() for line in f if line.strip()], "prompt_names_file"
    else:
        names, field = list(target.get("prompt_names", ())), "prompt_names"
    if not names:
        return list(classes)
    if len(names) != len(classes):
        raise ConfigError(f"{prefix}.{field}: {len(names)} names for {len(classes)} classes")
    return names


def scored_frames(num_frames: int, window: int, full_windows_only: bool, drop_last: int) -> np.ndarray:
    """[T] bool: the frames the released evaluation scores, frames t with t >= window - 1 (a full window of
    real frames) when ``full_windows_only``, and t < T - drop_last."""
    t = np.arange(num_frames)
    keep = t < num_frames - drop_last
    if full_windows_only:
        keep &= t >= window - 1
    return keep


def clip_initialised(params: dict, mc: oad.OVOADConfig, path: str) -> dict:
    """Copy a CLIP checkpoint into OV-OAD params: the text tower (and the frozen zero-shot tower), the
    saliency projector and zero-shot visual projection from CLIP's visual projection."""
    from tcvideo.clip.loader import load_clip
    clip_cfg, clip = load_clip(path)
    clip = jax.tree_util.tree_map(np.asarray, clip)
    if (clip_cfg.text_width, clip_cfg.embed_dim, clip_cfg.vision_width) != (mc.text.text_width, mc.text.text_width, mc.feature_dim):
        raise ConfigError(f"config.init_clip: {path} has text width {clip_cfg.text_width} / vision width "
                          f"{clip_cfg.vision_width}; the OV-OAD config needs {mc.text.text_width} / {mc.feature_dim}")
    out = dict(params)

    def merge(dst, src):
        return {k: (merge(v, src[k]) if isinstance(v, dict) else np.asarray(src[k], v.dtype))
                if k in src else v for k, v in dst.items()}

    out["text"] = merge(params["text"], clip["text"])
    out["saliency_projector"] = np.asarray(clip["visual"]["proj"], np.float32)
    if "zs_text" in params:
        out["zs_text"] = merge(params["zs_text"], clip["text"])
        out["zs_visual_proj"] = np.asarray(clip["visual"]["proj"], np.float32)
    return out
