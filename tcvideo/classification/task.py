"""Video classification against text class prompts: TC-CLIP, its baselines and other video-text
models ("model families") trained with soft-target cross-entropy and evaluated by top-1/top-5 with
softmax averaged over clips x crops, grouped per protocol (zero-shot splits mean/std, base-to-novel
harmonic mean).

A model family is registered in ``FAMILIES`` (``config.model.family``) by a ``tcvideo/<system>/family.py``
module (TC-CLIP: ``tcvideo/tc_clip/family.py``, VicTR: ``tcvideo/victr/family.py``).
Its module must map ``apply({'params': p}, video [B, T, H, W, 3], ids [C, L]) -> {'logits': [B, C]}``
and its model config must carry ``prompt_context_length`` and ``split_camel_case`` (class prompts).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tcvideo.classification import config as cls_config
from tcvideo.core.config import ConfigError, err
from tcvideo.core.registry import Registry, discover_systems, register_task
from tcvideo.core.task import Task


# ----------------------------------------------------------------------------- model families

@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """How the classification task builds one family of video-text models (``config.model.family``)."""

    model_config: Callable[[ml_collections.ConfigDict], Any]  # training config -> model config (ConfigError)
    build: Callable[..., Any]  # (model config, dtype=, remat=) -> flax module
    init_params: Callable[[ml_collections.ConfigDict, Any], dict]  # (training config, model config) -> numpy
    # Parameter groups (Task.param_rules): (regex on "a/b/c", group) pairs.
    param_rules: tuple[tuple[str, str], ...] = ()


# Filled by tcvideo/<system>/family.py modules (tc_clip, victr), found by the same discovery as tasks.
FAMILIES = Registry("model family", discover_systems)


def register_model_family(name: str, family: ModelFamily) -> None:
    FAMILIES.register(name, family)


def get_family(name: str, field: str = "config.model.family") -> ModelFamily:
    """The family registered as ``name``; ConfigError naming ``field`` when there is none."""
    try:
        return FAMILIES.lookup(name)
    except KeyError as e:
        raise ConfigError(f"{field}: {e.args[0]}") from None


# ----------------------------------------------------------------------------- prompts, loss, eval step

def class_prompts(data_cfg, mc, prefix: str, llm_path: str = "", template: str = "{prefix} {name}.") -> np.ndarray:
    """Token ids [C, L] of the class prompts of a dataset (or of an LLM-description file)."""
    from data_pipelines.video.input_pipeline import dataset_info
    from tcvideo.classification import prompts as prompting
    if llm_path:
        texts = prompting.load_llm_descriptions(llm_path)
        return prompting.tokenize_prompts(texts, mc.prompt_context_length, prefix, split_camel_case=False,
                                          template=template)
    names = dataset_info(data_cfg)["class_names"]
    return prompting.tokenize_prompts(names, mc.prompt_context_length, prefix, split_camel_case=mc.split_camel_case,
                                      template=template)


def soft_cross_entropy(logits, targets):
    """logits, targets [B, C] -> mean over B of -sum(targets * log_softmax(logits))."""
    return -(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)).sum(-1).mean()


def make_eval_step(model, mesh: Mesh, params_sharding, compute_dtype=jnp.float32):
    """-> jitted fn(params, ids, video [B, V, T, H, W, 3], label [B], mask [B]) -> [top1 hits, top5 hits,
    count] (global sums); softmax averaged over the V views of each video."""
    data_sh = NamedSharding(mesh, P("data"))

    def fn(params, ids, video, label, mask):
        b, v = video.shape[:2]
        flat = video.reshape((b * v,) + video.shape[2:]).astype(compute_dtype)
        logits = model.apply({"params": params}, flat, ids)["logits"].astype(jnp.float32)
        probs = jax.nn.softmax(logits, -1).reshape(b, v, -1).mean(1)
        k = min(5, probs.shape[-1])
        topk = jax.lax.top_k(probs, k)[1]
        hit1 = (topk[:, 0] == label) & mask
        hit5 = jnp.any(topk == label[:, None], axis=-1) & mask
        return jnp.stack([hit1.sum(), hit5.sum(), mask.sum()]).astype(jnp.float32)

    return jax.jit(fn, in_shardings=(params_sharding, NamedSharding(mesh, P()), data_sh, data_sh, data_sh),
                   out_shardings=NamedSharding(mesh, P()))


def summarize(results: dict, protocol: str) -> dict:
    """Per-group mean / std of top-1 (zero-shot splits), and base/novel harmonic mean."""
    groups: dict[str, list[float]] = {}
    for r in results.values():
        groups.setdefault(r["group"], []).append(r["top1"])
    summary = {g: {"top1_mean": float(np.mean(v)), "top1_std": float(np.std(v)), "num_splits": len(v)}
               for g, v in groups.items()}
    if protocol == "base2novel" and "base" in summary and "novel" in summary:
        b, n = summary["base"]["top1_mean"], summary["novel"]["top1_mean"]
        summary["harmonic_mean"] = 0.0 if b + n == 0 else 2 * b * n / (b + n)
    return summary


def format_table(results: dict, summary: dict) -> str:
    lines = [f"{'target':<28}{'group':<16}{'views':>6}{'top1':>8}{'top5':>8}{'n':>7}"]
    for name, r in results.items():
        lines.append(f"{name:<28}{r['group']:<16}{r['views']:>6}{r['top1']:>8.2f}{r['top5']:>8.2f}{r['count']:>7}")
    for g, s in summary.items():
        if isinstance(s, dict):
            lines.append(f"{'mean/std ' + g:<44}{s['top1_mean']:>8.2f} +- {s['top1_std']:.2f} ({s['num_splits']} splits)")
        else:
            lines.append(f"{g:<44}{s:>8.2f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the task

WISE_FT_NEEDS_CLIP = ("empty, but wise_ft_weight >= 0 mixes the fine-tuned weights with CLIP's: give the CLIP "
                      "checkpoint the model was fine-tuned from (e.g. the OpenAI ViT-B-16.pt), or set "
                      "wise_ft_weight=-1")

@register_task("video_classification")
class VideoClassificationTask(Task):
    """TC-CLIP's four protocols (supervised, zero-shot, few-shot, base-to-novel) for any model family."""

    # Evaluation-only settings and the input prefetch depth: a restart may change them.
    state_neutral_fields = ("protocol", "train_eval_clips", "train_eval_crops", "wise_ft_weight", "data.prefetch",
                            "data.test_split", "data.test_short_side", "data.multi_clip_rule")

    def __init__(self, config):
        super().__init__(config)
        self.family = get_family(config.model.get("family", "tc_clip"))
        v = cls_config.validate(config, model_config_fn=self.family.model_config)
        if config.wise_ft_weight >= 0 and not config.init_clip:
            raise err("init_clip", WISE_FT_NEEDS_CLIP)
        self.mc, self.info, self.eval_info = v["model"], v["info"], v["eval_info"]
        self.num_train_examples = self.info["num_examples"][config.data.train_split]
        self.model = self.family.build(self.mc, dtype=self.compute_dtype, remat=bool(config.remat))
        # Evaluation may compute in another dtype (float16 for released checkpoints, as on V100s).
        from tcvideo.core.task import DTYPES
        self.eval_dtype = DTYPES[config.eval.get("compute_dtype", "") or config.compute_dtype]
        self.eval_model = self.model if self.eval_dtype == self.compute_dtype else \
            self.family.build(self.mc, dtype=self.eval_dtype, remat=False)
        self.template = config.get("prompt_template", "{prefix} {name}.")
        self.ids = class_prompts(config.data, self.mc, config.prompt_prefix, config.llm_descriptions, self.template)

    def eval_step_compilations(self) -> int:
        """Compilations of the in-training eval step (its dtype is the training one)."""
        cached = self._jitted.get(f"eval_step_{jnp.dtype(self.compute_dtype).name}")
        return 0 if cached is None else int(cached[2]._cache_size())

    def init_params(self) -> dict:
        return self.family.init_params(self.config, self.mc)

    def param_rules(self):
        return self.family.param_rules

    def train_iterator(self, *, global_batch_size: int, seed: int, start_step: int, process_index: int,
                       process_count: int) -> Iterator[dict]:
        from data_pipelines.video.input_pipeline import make_train_iterator
        it = make_train_iterator(self.config.data, global_batch_size=global_batch_size, seed=seed,
                                 start_step=start_step, process_index=process_index, process_count=process_count,
                                 mixup_group_size=int(self.config.per_device_batch_size))
        return ({"video": b["video"], "targets": b["targets"]} for b in it)

    def loss(self, params, batch, rng):
        del rng  # the forward pass is deterministic (no dropout); augmentation happens in the pipeline
        out = self.model.apply({"params": params}, batch["video"].astype(self.compute_dtype), jnp.asarray(self.ids))
        return soft_cross_entropy(out["logits"], batch["targets"]), {}

    def evaluate(self, params, params_sharding, mesh, *, during_training: bool = False) -> dict:
        """During training: the validation target (``eval.validation``) at train_eval views, whose top-1 is
        the primary score (model selection); without one, every eval target and the first one's top-1.
        Otherwise: every eval target at eval views, primary = the first target's top-1."""
        c = self.config
        views = (c.train_eval_clips, c.train_eval_crops) if during_training else (c.eval.num_clips, c.eval.num_crops)
        val = cls_config.validation_target(c)
        targets = {"validation": val} if during_training and val is not None else cls_config.eval_targets(c)
        res = self.evaluate_targets(params, params_sharding, mesh, num_clips=views[0], num_crops=views[1],
                                    targets=targets, compute_dtype=self.compute_dtype if during_training else None)
        return {"results": res, "summary": summarize(res, c.protocol), "primary": next(iter(res.values()))["top1"]}

    def evaluate_targets(self, params, params_sharding, mesh, *, num_clips: int, num_crops: int,
                         targets: dict | None = None, compute_dtype=None) -> dict:
        """target name -> {'top1', 'top5', 'count', 'group', 'views'} over ``targets`` (name -> (group, data
        config); default the config's eval targets), computed in ``compute_dtype`` (default eval dtype)."""
        from data_pipelines.video.input_pipeline import make_eval_iterator
        from tcvideo.core.sharding import global_array, replicated_value
        c = self.config
        fp = compute_dtype or self.eval_dtype
        model = self.model if fp == self.compute_dtype else self.eval_model
        step_fn = self.jit_once(f"eval_step_{jnp.dtype(fp).name}", mesh, params_sharding,
                                lambda: make_eval_step(model, mesh, params_sharding, fp))
        data_sh, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        results = {}
        for name, (group, data) in (targets or cls_config.eval_targets(c)).items():
            llm = cls_config.target_llm_descriptions(c, name)
            ids = replicated_value(class_prompts(data, self.mc, c.prompt_prefix, llm, self.template), rep)
            sums = []  # per-batch device results, read once at the end: no sync per batch
            it = make_eval_iterator(data, split=data.test_split, batch_size=c.eval.batch_size, num_clips=num_clips,
                                    num_crops=num_crops, process_index=jax.process_index(),
                                    process_count=jax.process_count())
            for batch in it:
                sums.append(step_fn(params, ids, *(global_array(batch[k], data_sh) for k in ("video", "label", "mask"))))
            total = np.sum(np.asarray(jax.device_get(sums), np.float64), axis=0) if sums else np.zeros(3)
            n = max(total[2], 1.0)
            results[name] = {"top1": 100.0 * total[0] / n, "top5": 100.0 * total[1] / n, "count": int(total[2]),
                             "group": group, "views": f"{num_clips}x{num_crops}"}
        return results

    def wise_ft_clip_params(self) -> dict:
        """Numpy params the WiSE-FT ensemble mixes with: the family's initial params built from the CLIP
        weights of ``config.init_clip`` alone, as the official ``wise_state_dict`` mixes with the model
        freshly built from CLIP.

        Never ``init_params()``: with ``init_checkpoint`` set (a converted official checkpoint, a tcvideo
        model dir) those are the checkpoint itself, and the "ensemble" would equal the fine-tuned model.
        """
        c = self.config
        if not c.init_clip:
            raise err("init_clip", WISE_FT_NEEDS_CLIP)
        clip_only = c.copy_and_resolve_references()
        clip_only.init_checkpoint = ""
        return self.family.init_params(clip_only, self.mc)

    def final_evaluate(self, params, params_sharding, mesh) -> dict:
        """The fine-tuned params and, when ``config.wise_ft_weight >= 0``, the WiSE-FT ensemble
        ``(1 - w) * CLIP + w * fine-tuned`` (``ensemble.weight_ensemble``; CLIP from ``config.init_clip``,
        whatever the fine-tuned params came from: training, ``init_checkpoint`` or a converted checkpoint)."""
        out = super().final_evaluate(params, params_sharding, mesh)
        w = self.config.wise_ft_weight
        if w >= 0:
            from tcvideo.classification.ensemble import weight_ensemble
            from tcvideo.core.sharding import replicated_value
            fine_tuned = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
            fused = weight_ensemble(self.wise_ft_clip_params(), fine_tuned, w)
            fused = jax.tree_util.tree_map(replicated_value, fused, params_sharding)
            out[f"wise_ft_w{w:g}"] = self.evaluate(fused, params_sharding, mesh)
        return out

    def format_results(self, out: dict) -> str:
        return format_table(out["results"], out["summary"])
