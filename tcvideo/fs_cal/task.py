"""Few-shot common action localisation (FS-CAL, ICCV 2023) as a trainer task: ``config.task = "fs_cal"``.

Data: per-snippet features ([T, D] per video, see ``data_pipelines/temporal/sources.py``) of ActivityNet
1.3 or THUMOS'14 with their temporal annotations, or synthetic feature-level videos; classes split into
disjoint train / val / test sets; episodes built by ``data_pipelines/temporal/episodes.py`` (query window
of ``query_len`` snippets with the common action, ``shots`` supports from other videos). Model:
``tcvideo/fs_cal/model.py``.

Losses (design choices, config fields in ``config.fs_cal``):
* proposal score: binary cross-entropy of each valid anchor's logit against its best tIoU with a
  ground truth (a soft target, so the score ranks proposals by expected overlap), positives (tIoU >=
  ``pos_iou``) and the other anchors weighted half and half (they are very unbalanced);
* boundary regression: smooth-L1 on the positives' (centre offset, log length) targets, weight
  ``reg_loss_weight``;
* auxiliary relation module (training only): cross-entropy of the episode's pseudo-action class, weight
  ``relation_loss_weight``. Pseudo classes (``pseudo_labels``): "kmeans" clusters the mean raw feature
  of each training class into ``model.num_pseudo_classes`` groups (k-means, seeded), "class" uses the
  training class index itself.

Evaluation: fixed test episodes: the common-action benchmark's own (``benchmark.test_file`` /
``gt_file``, ``data_pipelines/temporal/cal_benchmark.py``), else ``test_episodes`` seeded by
``episode_seed``, stored in ``test_episodes_file`` when given (loaded when it exists, else written);
queries padded to their bucket (``query_buckets``), scores = sigmoid(logit), boxes decoded and clipped
to the valid query, NMS at ``nms_threshold`` keeping ``top_k``; the benchmark's AP pooled over all
episodes (``AP@0.5``, ``AP@avg`` over 0.5:0.05:0.95, the primary number) and tcvideo's per-class mean
(``mAP@...``) (``tcvideo/fs_cal/metrics.py``). Evaluations during training use ``val_episodes``
episodes of the validation classes (of the test classes when there are none), so the best checkpoint
is not picked on the test episodes.
"""
from __future__ import annotations

import os
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from tcvideo.fs_cal import model as fs_lib
from tcvideo.core.registry import register_task
from tcvideo.core.task import Task
from tcvideo.fs_cal.metrics import THRESHOLDS, mean_average_precision, nms, pooled_average_precision, temporal_iou
from tcvideo.core.config import ConfigError

DATASETS = ("synthetic", "activitynet", "thumos14")


def default_fs_cal_config() -> ml_collections.ConfigDict:
    """``config.fs_cal``: everything FS-CAL specific (see the module docstring)."""
    c = ml_collections.ConfigDict()
    c.dataset = "synthetic"  # synthetic | activitynet | thumos14
    c.annotations = ""  # ActivityNet 1.3 JSON, or the THUMOS'14 folder of <Class>_{val,test}.txt files
    c.feature_dir = ""  # <video_id>.npy / .npz per video, float [T, D]
    c.snippets_per_second = 1.0  # THUMOS (no durations): feature snippets per second of video
    c.class_fractions = (0.8, 0.1, 0.1)  # train / val / test classes (seeded by split_seed)
    c.class_split_file = ""  # JSON {"train": [...], "val": [...], "test": [...]} overrides the fractions
    c.split_seed = 0
    c.shots = 5
    c.query_len = 128  # longest query window, snippets (a longer video gives a window of this many)
    c.query_buckets = ()  # padded query lengths below query_len (query_len is always the last); () = query_len only
    c.single_instance = False  # queries only from videos with one instance of the class (the benchmark's)
    c.support_len = 16  # segments per support (each support resampled to this many snippets)
    c.max_gt = 8  # ground-truth instances kept per query window
    c.test_episodes = 1000
    c.episode_seed = 0
    # JSON of the fixed test episodes (loaded if present, else written); "auto": in feature_dir, named after
    # dataset, shots and episode_seed (in memory only for synthetic data); "": in memory only
    c.test_episodes_file = ""
    c.val_episodes = 200  # evals during training
    c.nms_threshold = 0.4
    c.top_k = 300
    c.pos_iou = 0.5
    c.reg_loss_weight = 1.0
    c.relation_loss_weight = 0.1
    c.pseudo_labels = "kmeans"  # kmeans | class
    # the common-action benchmark's episode files (data_pipelines/temporal/cal_benchmark.py): when test_file
    # is set, the test episodes are exactly its episodes (features from feature_dir), scored on gt_file
    c.benchmark = ml_collections.ConfigDict(dict(test_file="", gt_file="", support_order="stored",
                                                 frames_per_second=3.0))
    c.model = ml_collections.ConfigDict(dict(hidden_dim=256, anchor_scales=(4, 8, 16, 32, 64), context_ratio=0.25,
                                             dynamics_kernels=(1, 2, 4), dynamics_summary="strided",
                                             dynamics_keys="all", softmax_over="rows", row_norm="columns",
                                             num_pseudo_classes=16))
    c.synthetic = ml_collections.ConfigDict(dict(num_classes=16, videos_per_class=8, video_len=64, feature_dim=16,
                                                 pattern_len=4, min_len=6, max_len=16, distractors=1, noise=0.5,
                                                 seed=0))
    return c


def fs_cal_base_config() -> ml_collections.ConfigDict:
    """``base_config()`` set up for the fs_cal task (configs/fs_cal/*.py start from this)."""
    from tcvideo.core.config import base_config
    c = base_config()
    c.task = "fs_cal"
    c.fs_cal = default_fs_cal_config()
    c.lr = 1e-4
    c.min_lr = 1e-6
    c.weight_decay = 1e-4
    c.eval.batch_size = 16
    return c


# ----------------------------------------------------------------------------- data

def _err(field: str, msg: str) -> ConfigError:
    return ConfigError(f"config.fs_cal.{field}: {msg}")


def build_source(fc):
    """The FeatureSource of ``config.fs_cal`` (ConfigError naming the field on bad input)."""
    from data_pipelines.temporal import sources
    from data_pipelines.video.annotations import AnnotationError
    if fc.dataset not in DATASETS:
        raise _err("dataset", f"{fc.dataset!r} not in {DATASETS}")
    if fc.dataset == "synthetic":
        try:
            return sources.SyntheticFeatureSource(**fc.synthetic.to_dict())
        except (TypeError, ValueError) as e:
            raise _err("synthetic", str(e).splitlines()[0]) from e
    if not fc.annotations or not os.path.exists(fc.annotations):
        raise _err("annotations", f"no such file or directory {fc.annotations!r}")
    if not fc.feature_dir or not os.path.isdir(fc.feature_dir):
        raise _err("feature_dir", f"no such directory {fc.feature_dir!r}")
    try:
        segments, durations = sources.load_annotations(fc.dataset, fc.annotations)
    except AnnotationError as e:
        raise _err("annotations", str(e)) from e
    try:
        return sources.NpyFeatureSource(segments, fc.feature_dir, fc.snippets_per_second, durations=durations)
    except ValueError as e:
        raise _err("feature_dir", str(e).splitlines()[0]) from e


def check_benchmark_files(fc) -> None:
    """ConfigError naming the ``benchmark`` field of a missing file or a bad option, before any reading."""
    from data_pipelines.temporal.cal_benchmark import SUPPORT_ORDERS
    b = fc.benchmark
    if fc.dataset != "activitynet":
        raise _err("benchmark.test_file", f"the benchmark's episode files are ActivityNet's (dataset is {fc.dataset!r})")
    for field in ("test_file", "gt_file"):
        if b[field] and not os.path.isfile(b[field]):
            raise _err(f"benchmark.{field}", f"no such file {b[field]!r}")
    if b.support_order not in SUPPORT_ORDERS:
        raise _err("benchmark.support_order", f"{b.support_order!r} not in {SUPPORT_ORDERS}")
    if not b.frames_per_second > 0:
        raise _err("benchmark.frames_per_second", "must be > 0")


def benchmark_specs(fc, source) -> list[dict]:
    """The benchmark's test episodes as episode specs on ``source``'s features, labelled with the class of
    the annotated instance their query's ground truth matches (tIoU >= 0.5; else "c1")."""
    from data_pipelines.temporal import cal_benchmark as cb
    b = fc.benchmark
    try:
        eps = cb.load_episode_file(b.test_file)
    except (pickle_errors() + (cb.BenchmarkFormatError, OSError)) as e:
        raise _err("benchmark.test_file", str(e)) from e
    if b.gt_file:
        try:
            gts = cb.load_gt_file(b.gt_file)
        except cb.BenchmarkFormatError as e:
            raise _err("benchmark.gt_file", str(e)) from e
        missing = [e["id"] for e in eps if e["id"] not in gts]
        if missing:
            raise _err("benchmark.gt_file", f"{b.gt_file}: no ground truth for {len(missing)} queries of "
                                            f"{b.test_file}: {missing[:3]}")
        eps = [{**e, "gt": gts[e["id"]]} for e in eps]
    try:
        specs = cb.to_specs(eps, source.num_snippets, shots=int(fc.shots), snippets_per_second=fc.snippets_per_second,
                            support_order=b.support_order, frames_per_second=b.frames_per_second)
    except ValueError as e:
        raise _err("feature_dir", f"{fc.feature_dir}: {e}") from e
    except cb.BenchmarkFormatError as e:
        raise _err("shots", str(e)) from e
    longest = max(s["window_len"] for s in specs)
    if longest > int(fc.query_len):
        raise _err("query_len", f"{fc.query_len} snippets < the benchmark's longest query ({longest} snippets)")
    by_video: dict[str, list] = {}
    for inst in source.instances:
        by_video.setdefault(inst.video, []).append(inst)
    for sp in specs:
        cands = by_video.get(sp["query_video"], [])
        if cands and sp["gt"]:
            g = np.asarray(sp["gt"][:1], np.float64) + sp["window_start"]
            iou = temporal_iou(g, np.asarray([[i.start, i.end] for i in cands], np.float64))[0]
            if iou.max() >= 0.5:
                sp["label"] = cands[int(iou.argmax())].label
    return specs


def pickle_errors() -> tuple:
    import pickle
    return (pickle.UnpicklingError, EOFError)


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Cluster ids [N] of rows of x [N, D] (Lloyd's algorithm, seeded init from distinct rows)."""
    rng = np.random.default_rng([seed, 5])
    centres = x[rng.choice(len(x), size=k, replace=False)].copy()
    ids = np.zeros(len(x), np.int64)
    for _ in range(iters):
        ids = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if np.any(ids == j):
                centres[j] = x[ids == j].mean(0)
    return ids


def pseudo_classes(source, classes: list[str], mode: str, num: int, seed: int) -> dict[str, int]:
    """Training class -> pseudo-action class id in [0, num)."""
    if mode == "class":
        if len(classes) > num:
            raise _err("model.num_pseudo_classes", f"{num} < {len(classes)} training classes (pseudo_labels='class')")
        return {c: i for i, c in enumerate(classes)}
    if mode != "kmeans":
        raise _err("pseudo_labels", f"{mode!r} not in ('kmeans', 'class')")
    means = []
    for c in classes:  # mean raw feature of (up to 32 of) the class's instances
        insts = [i for i in source.instances if i.label == c][:32]
        feats = [np.asarray(source.features(i.video)[int(i.start): max(int(np.ceil(i.end)), int(i.start) + 1)],
                            np.float32).mean(0) for i in insts]
        means.append(np.mean(feats, 0))
    means = np.stack(means)
    means /= np.linalg.norm(means, axis=-1, keepdims=True) + 1e-6
    ids = kmeans(means, min(num, len(classes)), seed)
    return {c: int(i) for c, i in zip(classes, ids)}


# ----------------------------------------------------------------------------- the task

@register_task("fs_cal")
class FSCALTask(Task):

    def __init__(self, config):
        super().__init__(config)
        from data_pipelines.temporal import sources
        from data_pipelines.temporal.episodes import EpisodeSampler
        if "fs_cal" not in config:
            raise ConfigError("config.fs_cal: missing (start the config from tcvideo.fs_cal.task.fs_cal_base_config)")
        fc = self.fc = config.fs_cal
        for f in ("shots", "query_len", "support_len", "max_gt", "test_episodes", "val_episodes", "top_k"):
            if int(fc[f]) < 1:
                raise _err(f, "must be >= 1")
        if not 0 < fc.nms_threshold <= 1 or not 0 < fc.pos_iou <= 1:
            raise _err("nms_threshold" if not 0 < fc.nms_threshold <= 1 else "pos_iou", "must be in (0, 1]")
        try:
            self.mc = fs_lib.FSCALConfig(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                            for k, v in fc.model.to_dict().items()})
        except (TypeError, ValueError) as e:
            raise _err("model", str(e).splitlines()[0]) from e
        ep_dir = os.path.dirname(os.path.abspath(fc.test_episodes_file))
        if fc.test_episodes_file not in ("", "auto") and not os.path.isdir(ep_dir):
            raise _err("test_episodes_file", f"directory of {fc.test_episodes_file!r} does not exist")
        bench = fc.get("benchmark", ml_collections.ConfigDict(dict(test_file="")))
        if bench.test_file:
            check_benchmark_files(fc)
        self.source = build_source(fc)
        try:
            self.splits = sources.split_classes(self.source.class_names(), tuple(fc.class_fractions), fc.split_seed,
                                                fc.class_split_file)
        except (OSError, ValueError) as e:
            raise _err("class_split_file" if fc.class_split_file else "class_fractions", str(e)) from e
        self.benchmark_specs = benchmark_specs(fc, self.source) if bench.test_file else None
        if self.benchmark_specs is not None:  # the benchmark's classes are test classes only: no leakage
            bench_classes = {s["label"] for s in self.benchmark_specs} - {"c1"}
            for split in ("train", "val"):
                self.splits[split] = [c for c in self.splits[split] if c not in bench_classes]
            self.splits["test"] = sorted(set(self.splits["test"]) | bench_classes)
        kw = dict(shots=int(fc.shots), query_len=int(fc.query_len), support_len=int(fc.support_len),
                  max_gt=int(fc.max_gt), buckets=tuple(fc.get("query_buckets", ())),
                  single_instance=bool(fc.get("single_instance", False)))
        if any(int(b) < 1 for b in kw["buckets"]):
            raise _err("query_buckets", f"{tuple(kw['buckets'])}: lengths must be >= 1")
        self.samplers = {}
        for split in ("train", "val", "test"):
            if not self.splits[split]:
                continue
            try:
                self.samplers[split] = EpisodeSampler(self.source, self.splits[split], **kw)
            except ValueError as e:
                raise _err("shots", f"{split} classes: {e}") from e
        for split in ("train", "test"):
            if split not in self.samplers:
                raise _err("class_fractions", f"no {split} classes")
        train_classes = self.samplers["train"].classes
        self.pseudo = pseudo_classes(self.source, train_classes, fc.pseudo_labels, self.mc.num_pseudo_classes,
                                     config.seed)
        self.num_train_examples = self.samplers["train"].num_queries
        self.model = fs_lib.FSCAL(self.mc, dtype=self.compute_dtype)
        self.anchors = fs_lib.make_anchors(int(fc.query_len), self.mc.anchor_scales)
        self._episodes: dict[str, list] = {}

    # -- parameters and data

    def init_params(self) -> dict:
        fc = self.fc
        d = self.source.feature_dim
        q = jnp.zeros((1, fc.query_len, d))
        s = jnp.zeros((1, fc.shots, fc.support_len, d))
        with jax.default_device(jax.local_devices(backend="cpu")[0]):
            p = self.model.init(jax.random.PRNGKey(self.config.seed), q, jnp.ones((1, fc.query_len), bool), s,
                                jnp.ones((1, len(self.anchors))))["params"]
        return jax.tree_util.tree_map(np.asarray, p)

    def train_iterator(self, *, global_batch_size: int, seed: int, start_step: int, process_index: int,
                       process_count: int) -> Iterator[dict]:
        sampler = self.samplers["train"]
        local = global_batch_size // process_count
        step = start_step
        while True:
            rows = range(process_index * local, (process_index + 1) * local)
            specs = [sampler.sample(np.random.default_rng([seed, step, r])) for r in rows]
            batch = sampler.batch(specs, int(self.fc.query_len))  # one static training shape
            batch["pseudo"] = np.asarray([self.pseudo[s["label"]] for s in specs], np.int32)
            yield batch
            step += 1

    def episodes(self, split: str) -> list[dict]:
        """The fixed evaluation episodes of 'test' (file-backed when configured) or 'val'."""
        if split in self._episodes:
            return self._episodes[split]
        from data_pipelines.temporal import episodes as ep_lib
        fc = self.fc
        if split == "test" and self.benchmark_specs is not None:
            eps = self.benchmark_specs
        elif split == "val":
            sampler = self.samplers.get("val", self.samplers["test"])
            eps = ep_lib.make_episodes(sampler, int(fc.val_episodes), int(fc.episode_seed) + 1)
        else:
            sampler = self.samplers["test"]
            meta = {"dataset": fc.dataset, "shots": int(fc.shots), "query_len": int(fc.query_len),
                    "episode_seed": int(fc.episode_seed), "num_episodes": int(fc.test_episodes)}
            path = self.test_episodes_path()
            if path and os.path.exists(path):
                try:
                    eps = ep_lib.load_episodes(path, sampler, meta)
                except (ValueError, KeyError) as e:
                    raise _err("test_episodes_file", str(e)) from e
            else:
                eps = ep_lib.make_episodes(sampler, int(fc.test_episodes), int(fc.episode_seed))
                if path and jax.process_index() == 0:
                    ep_lib.save_episodes(path, eps, meta)
        self._episodes[split] = eps
        return eps

    def test_episodes_path(self) -> str:
        fc = self.fc
        if fc.test_episodes_file != "auto":
            return fc.test_episodes_file
        if fc.dataset == "synthetic":
            return ""
        return os.path.join(fc.feature_dir, f"fs_cal_test_episodes_{fc.dataset}_{fc.shots}shot_s{fc.episode_seed}.json")

    # -- loss

    def anchor_targets(self, gt, gt_mask):
        """gt [B, G, 2], gt_mask [B, G] -> best tIoU [B, N] and the matched ground truth [B, N, 2]."""
        iou = temporal_iou(jnp.asarray(self.anchors)[None], gt, xp=jnp) * gt_mask[:, None, :]
        best = iou.argmax(-1)
        return iou.max(-1), jnp.take_along_axis(gt, best[..., None], axis=1)

    def loss(self, params, batch, rng):
        del rng  # deterministic forward pass
        fc = self.fc
        best_iou, matched = self.anchor_targets(batch["gt"], batch["gt_mask"])
        valid = batch["query_mask"][:, fs_lib.anchor_centre_index(self.anchors, fc.query_len)].astype(jnp.float32)
        pos = (best_iou >= fc.pos_iou).astype(jnp.float32) * valid
        neg = (1.0 - pos) * valid
        out = self.model.apply({"params": params}, batch["query"].astype(self.compute_dtype), batch["query_mask"],
                               batch["support"].astype(self.compute_dtype), relation_weights=pos)
        bce = optax.sigmoid_binary_cross_entropy(out["logits"], best_iou)
        n_pos, n_neg = jnp.maximum(pos.sum(), 1.0), jnp.maximum(neg.sum(), 1.0)
        cls = 0.5 * (bce * pos).sum() / n_pos + 0.5 * (bce * neg).sum() / n_neg
        target = fs_lib.encode_boxes(jnp.asarray(self.anchors), matched)
        reg = (optax.huber_loss(out["reg"], target, delta=1.0).sum(-1) * pos).sum() / n_pos
        rel = optax.softmax_cross_entropy_with_integer_labels(out["relation_logits"], batch["pseudo"]).mean()
        total = cls + fc.reg_loss_weight * reg + fc.relation_loss_weight * rel
        return total, {"cls_loss": cls, "reg_loss": reg, "relation_loss": rel}

    # -- evaluation

    def predict_fn(self, mesh, params_sharding):
        """Jitted (params, query, query_mask, support) -> (scores [B, N], boxes [B, N, 2], mask [B, N])."""
        return self.jit_once("predict", mesh, params_sharding, lambda: self._build_predict(mesh, params_sharding))

    def _build_predict(self, mesh, params_sharding):
        data_sh, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

        def fn(params, q, qm, s):
            out = self.model.apply({"params": params}, q.astype(self.compute_dtype), qm, s.astype(self.compute_dtype))
            return jax.nn.sigmoid(out["logits"]), out["boxes"], out["proposal_mask"]

        return jax.jit(fn, in_shardings=(params_sharding, data_sh, data_sh, data_sh), out_shardings=(rep, rep, rep))

    def detect(self, scores: np.ndarray, boxes: np.ndarray, mask: np.ndarray, valid_len: int):
        """One episode's proposals -> (segments [K, 2], scores [K]) after clipping and NMS."""
        b = np.clip(boxes[mask], 0.0, float(valid_len))
        s = scores[mask]
        ok = b[:, 1] - b[:, 0] > 1e-3
        b, s = b[ok], s[ok]
        keep = nms(b, s, float(self.fc.nms_threshold), int(self.fc.top_k))
        return b[keep], s[keep]

    def predict_episodes(self, params, params_sharding, mesh, specs: list[dict]) -> list[dict]:
        """Detections of each episode: {'id', 'label', 'gt', 'segments', 'scores'}, in the order of ``specs``.
        Episodes run grouped by query bucket (one static shape per bucket)."""
        from tcvideo.core.sharding import global_array
        sampler = self.samplers["test"]  # materialisation only needs the source and the lengths
        fn = self.predict_fn(mesh, params_sharding)
        data_sh = NamedSharding(mesh, P("data"))
        bs = int(self.config.eval.batch_size)
        local = bs // jax.process_count()
        by_bucket: dict[int, list[int]] = {}
        for k, spec in enumerate(specs):
            by_bucket.setdefault(sampler.bucket(spec), []).append(k)
        results: dict[int, dict] = {}
        for length, idx in sorted(by_bucket.items()):
            for i in range(0, len(idx), bs):
                chunk = idx[i:i + bs]
                padded = chunk + [chunk[-1]] * (bs - len(chunk))
                mine = padded[jax.process_index() * local:(jax.process_index() + 1) * local]
                batch = sampler.batch([specs[k] for k in mine], length)
                scores, boxes, pmask = jax.device_get(fn(params, *(global_array(batch[k], data_sh)
                                                                   for k in ("query", "query_mask", "support"))))
                for j, k in enumerate(chunk):
                    segs, sc = self.detect(np.asarray(scores[j]), np.asarray(boxes[j]), np.asarray(pmask[j]),
                                           sampler.window_len(specs[k]))
                    results[k] = {"id": k, "label": specs[k]["label"], "gt": specs[k]["gt"], "segments": segs,
                                  "scores": sc}
        return [results[k] for k in range(len(specs))]

    def evaluate(self, params, params_sharding, mesh, *, during_training: bool = False) -> dict:
        """The benchmark's AP (all episodes pooled, ``AP@<thr>``) and tcvideo's per-class mean (``mAP@<thr>``)."""
        split = "val" if during_training else "test"
        specs = self.episodes(split)
        dets = self.predict_episodes(params, params_sharding, mesh, specs)
        res = {**pooled_average_precision(dets, THRESHOLDS), **mean_average_precision(dets, THRESHOLDS)}
        bench = split == "test" and self.benchmark_specs is not None
        name = f"{self.fc.dataset}_{'benchmark' if bench else split}_{self.fc.shots}shot"
        res["num_episodes"] = len(specs)
        return {"results": {name: res},
                "summary": {"AP@0.5": res["AP@0.5"], "AP@avg": res["AP@avg"], "mAP@0.5": res["mAP@0.5"]},
                "primary": res["AP@0.5"]}

    def format_results(self, out: dict) -> str:
        lines = [f"{'target':<36}{'AP@0.5':>9}{'AP@0.75':>9}{'AP@avg':>9}{'cls-mAP@0.5':>12}{'classes':>9}"
                 f"{'episodes':>9}"]
        for name, r in out["results"].items():
            lines.append(f"{name:<36}{r['AP@0.5']:>9.2f}{r['AP@0.75']:>9.2f}{r['AP@avg']:>9.2f}{r['mAP@0.5']:>12.2f}"
                         f"{r['num_classes']:>9}{r['num_episodes']:>9}")
        return "\n".join(lines)
