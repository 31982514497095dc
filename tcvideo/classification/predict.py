"""Classifying video files with a trained or converted model: ``tcvideo predict``.

    tcvideo predict a.mp4 b.mp4 --checkpoint DIR --classes "moving left,moving right" [--top-k 5] [--json]

``DIR`` is either a model directory written by ``tcvideo convert`` (``model.json`` + ``params/``; a
converted CLIP model is used zero-shot, frames averaged) or a training workdir (``config.json`` +
``checkpoints/``) of any model family (``config.model.family``: TC-CLIP, VicTR, ...). Videos are decoded with PyAV and go through the model's *eval* pipeline
(``data_pipelines.video``: segment-centre sampling, short-side resize, centre crop(s), normalisation);
class probabilities are the softmax averaged over the views, as in evaluation. Several files are
batched (``--batch-size`` clips per forward pass); unreadable files are reported on stderr with their
reason and skipped. Exit status: 0 all classified, 1 some skipped, 2 bad usage (checkpoint, classes).

Python::

    from tcvideo.classification import predict
    model = predict.load_model("workdir")
    preds, failures = predict.predict_files(model, ["a.mp4"], ["moving left", "moving right"])
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Optional, Sequence

import ml_collections
import numpy as np

CONFIG_JSON = "config.json"


class CheckpointError(ValueError):
    """--checkpoint does not point at something we can load; the message says what is missing."""


@dataclasses.dataclass
class LoadedModel:
    """A classifier with the data settings of its eval pipeline.

    data: the eval-pipeline fields used here (name, num_frames, input_size, short_side, test_short_side,
      normalization, multi_clip_rule); class_names: the training classes when known (workdirs).
    """

    classifier: Any  # tcvideo.classification.inference.VideoClassifier
    data: ml_collections.ConfigDict
    class_names: Optional[list[str]]
    source: str  # 'model_dir:tc_clip' | 'model_dir:clip' | 'workdir'
    num_clips: int = 1
    num_crops: int = 1
    family: str = "tc_clip"  # model family (config.model.family of a workdir): "tc_clip" | "victr" | ...

    @property
    def config(self):
        return self.classifier.config


def _eval_data(num_frames: int, input_size: int, normalization: str) -> ml_collections.ConfigDict:
    from data_pipelines.video.input_pipeline import default_data_config
    d = default_data_config()
    d.name = "files"  # not a registered dataset: frames are decoded at full size, as synthetic ones are stored
    d.num_frames, d.input_size, d.normalization = int(num_frames), int(input_size), normalization
    return d


def _load_model_dir(path: str, num_frames: int) -> LoadedModel:
    from tcvideo.core import model_dir as store
    from tcvideo.classification.inference import VideoClassifier
    from tcvideo.tc_clip import model as tcm

    params, meta = store.load_model(path)
    kind = meta.get("model")
    if kind == "tc_clip":
        cfg = tcm.TCCLIPConfig.from_dict(meta["config"])
        # The official TC-CLIP recipe (and tcvideo's data default) normalises with ImageNet statistics.
        norm = meta.get("normalization", "imagenet")
    elif kind == "clip":
        from tcvideo.tc_clip.convert import clip_init_params
        from tcvideo.clip.model import CLIPConfig
        # Zero-shot CLIP on videos: frame embeddings averaged, hand-written prompts (ViFi-CLIP layout).
        cfg = tcm.TCCLIPConfig(clip=CLIPConfig.from_dict(meta["config"]), num_frames=num_frames,
                               **tcm.VARIANTS["vanilla_clip"])
        params = clip_init_params(params, cfg)
        norm = meta.get("normalization", "clip")
    else:
        raise CheckpointError(f"{os.path.join(path, store.MODEL_JSON)}: model {kind!r} cannot classify videos "
                              "(expected 'tc_clip' or 'clip')")
    data = _eval_data(cfg.num_frames, cfg.clip.image_resolution, norm)
    return LoadedModel(VideoClassifier("tc_clip", cfg, params), data, None, f"model_dir:{kind}")


def _workdir_family(config: ml_collections.ConfigDict, config_path: str):
    """(name, ModelFamily) of a workdir's resolved config; CheckpointError naming the file and field."""
    from tcvideo.classification.task import FAMILIES
    from tcvideo.core.registry import DEFAULT_TASK
    task = config.get("task", DEFAULT_TASK)
    if task != DEFAULT_TASK:
        raise CheckpointError(f"{config_path}: task {task!r} is not {DEFAULT_TASK!r}; only video-classification "
                              "workdirs classify videos by class names")
    name = config.model.get("family", "tc_clip")  # workdirs older than model families are TC-CLIP ones
    try:
        return name, FAMILIES.lookup(name)
    except KeyError as e:
        raise CheckpointError(f"{config_path}: model.family: {e.args[0]}") from None


def _load_workdir(path: str, step: Optional[int]) -> LoadedModel:
    from tcvideo.classification.inference import VideoClassifier
    from tcvideo.core.config import ConfigError
    from tcvideo.core.checkpoints import load_checkpoint_params

    config_path = os.path.join(path, CONFIG_JSON)
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    name, family = _workdir_family(config, config_path)
    try:
        mc = family.model_config(config)
    except ConfigError as e:
        raise CheckpointError(f"{config_path}: {e}") from e
    try:
        params = load_checkpoint_params(path, step)
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: training workdir without a checkpoint ({e})") from e
    try:
        from data_pipelines.video.input_pipeline import dataset_info
        names = dataset_info(config.data)["class_names"]
    except Exception:  # noqa: BLE001 - the training data may live elsewhere; classes must then be given
        names = None
    clf = VideoClassifier(family, mc, params, prompt_prefix=config.get("prompt_prefix", None))
    return LoadedModel(clf, config.data, names, "workdir", int(config.eval.num_clips), int(config.eval.num_crops),
                       family=name)


def load_model(checkpoint: str, *, step: Optional[int] = None, num_frames: int = 8) -> LoadedModel:
    """A converted model dir or a training workdir -> LoadedModel.

    step: checkpoint step of a workdir (default latest); num_frames: frames per clip for a converted
    CLIP model (TC-CLIP dirs and workdirs record theirs).
    """
    from tcvideo.core import model_dir as store
    if not os.path.isdir(checkpoint):
        raise CheckpointError(f"--checkpoint {checkpoint!r}: no such directory")
    if os.path.exists(os.path.join(checkpoint, store.MODEL_JSON)):
        return _load_model_dir(checkpoint, num_frames)
    if os.path.exists(os.path.join(checkpoint, CONFIG_JSON)):
        return _load_workdir(checkpoint, step)
    raise CheckpointError(f"--checkpoint {checkpoint!r} is neither a model directory ({store.MODEL_JSON}, "
                          f"from `tcvideo convert`) nor a training workdir ({CONFIG_JSON} + checkpoints/)")


# ----------------------------------------------------------------------------- preprocessing

def eval_views(frames: np.ndarray, data: ml_collections.ConfigDict, num_clips: int = 1,
               num_crops: int = 1) -> np.ndarray:
    """Decoded uint8 frames [N, H, W, 3] -> normalised views float32 [V, T, S, S, 3], V = clips x crops.

    The same functions as ``make_eval_iterator``: multi-clip sampling, then ``augment.test_transform``.
    """
    from data_pipelines.video import augment, sampling

    t = int(data.num_frames)
    rng = np.random.default_rng([0, 0]) if data.multi_clip_rule == "official" else None
    idx = sampling.multi_clip_indices(len(frames), t, num_clips, data.multi_clip_rule, rng)  # [C, T]
    views = [np.asarray(augment.test_transform(frames[clip], input_size=int(data.input_size), num_crops=num_crops,
                                               short_side=data.test_short_side or None,
                                               normalization=data.normalization)) for clip in idx]
    return np.concatenate(views, axis=0).astype(np.float32)  # clip-major, as the eval iterator


def load_video(path: str, data: ml_collections.ConfigDict, num_clips: int = 1, num_crops: int = 1) -> np.ndarray:
    """Decode ``path`` (PyAV) and return its eval views [V, T, S, S, 3]; raises VideoDecodeError."""
    from data_pipelines.video.video_io import decode_video
    # video_folder datasets store frames resized to data.short_side at build time; do the same.
    short = int(data.short_side) if data.name == "video_folder" else None
    return eval_views(decode_video(path, short_side=short).frames, data, num_clips, num_crops)


def denormalize(views: np.ndarray, normalization: Any = "imagenet") -> np.ndarray:
    """Normalised float frames [..., 3] -> uint8 RGB for display (inverse of augment.normalize)."""
    from data_pipelines.video.augment import NORMALIZATION
    mean, std = NORMALIZATION[normalization] if isinstance(normalization, str) else normalization
    return np.clip(np.round(views * np.asarray(std) + np.asarray(mean)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- prediction

@dataclasses.dataclass
class Prediction:
    path: str
    ranked: list[tuple[str, float]]  # (class, probability), best first

    def to_dict(self) -> dict:
        return {"path": self.path, "top_k": [{"class": c, "probability": p} for c, p in self.ranked]}


def probabilities(model: LoadedModel, views: np.ndarray, class_names: Sequence[str], batch_size: int = 8
                  ) -> np.ndarray:
    """views [B, V, T, S, S, 3] -> class probabilities [B, C] (softmax averaged over the V views).

    Runs in chunks of ``batch_size`` clips; the last chunk is padded so that one compiled shape serves all.
    """
    b, v = views.shape[:2]
    flat = views.reshape((b * v,) + views.shape[2:])
    chunk = max(1, min(batch_size, len(flat)))
    out = []
    for lo in range(0, len(flat), chunk):
        part = flat[lo:lo + chunk]
        pad = chunk - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
        logits = model.classifier.logits(part, class_names)[:chunk - pad]
        out.append(logits)
    logits = np.concatenate(out).astype(np.float64).reshape(b, v, -1)
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True)).mean(axis=1)


def rank(probs: np.ndarray, class_names: Sequence[str], top_k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:top_k]
    return [(class_names[i], float(probs[i])) for i in order]


def predict_files(model: LoadedModel, paths: Sequence[str], class_names: Sequence[str], *, top_k: int = 5,
                  batch_size: int = 8) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Classify video files. -> (predictions in input order, [(path, reason)] of unreadable files)."""
    from data_pipelines.video.video_io import DECODE_ERROR, VideoDecodeError
    if not class_names:
        raise ValueError("no class names given")
    good, views, failures = [], [], []
    for p in paths:
        try:
            views.append(load_video(p, model.data, model.num_clips, model.num_crops))
            good.append(p)
        except VideoDecodeError as e:
            failures.append((p, e.reason))
        except Exception as e:  # noqa: BLE001 - one odd file must not stop the others
            failures.append((p, f"{DECODE_ERROR}: {type(e).__name__}: {e}"))
    if not good:
        return [], failures
    probs = probabilities(model, np.stack(views), class_names, batch_size)
    return [Prediction(p, rank(pr, class_names, top_k)) for p, pr in zip(good, probs)], failures


# ----------------------------------------------------------------------------- CLI

def parse_classes(classes: Optional[str], classes_file: Optional[str]) -> Optional[list[str]]:
    if classes is not None:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not names:
            raise ValueError("--classes is empty")
        return names
    if classes_file is not None:
        from data_pipelines.video.annotations import load_class_names
        if not os.path.isfile(classes_file):
            raise ValueError(f"--classes-file {classes_file!r}: no such file")
        names = load_class_names(classes_file)
        if not names:
            raise ValueError(f"--classes-file {classes_file!r} lists no class")
        return names
    return None


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="converted model dir or training workdir")
    p.add_argument("--step", type=int, default=None, help="workdir checkpoint step (default: latest)")
    p.add_argument("--num-frames", type=int, default=8, help="frames per clip for a converted CLIP model")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tcvideo predict", description="Classify video files by class names.")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    add_model_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--classes", help='comma-separated class names, e.g. "moving left,moving right"')
    g.add_argument("--classes-file", help="class names: one a line, `id,name` CSV or JSON")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def format_text(preds: Sequence[Prediction]) -> str:
    lines = []
    for pr in preds:
        lines.append(pr.path)
        lines += [f"  {i + 1:2d}. {p:7.4f}  {c}" for i, (c, p) in enumerate(pr.ranked)]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status: 0 when every video was classified, 1 when some were skipped (or all), 2 on bad usage."""
    args = build_parser().parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        print("tcvideo predict: --top-k and --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        names = parse_classes(args.classes, args.classes_file)
        model = load_model(args.checkpoint, step=args.step, num_frames=args.num_frames)
    except (ValueError, FileNotFoundError) as e:
        print(f"tcvideo predict: {e}", file=sys.stderr)
        return 2
    names = names or model.class_names
    if not names:
        print("tcvideo predict: give --classes or --classes-file (the checkpoint does not record its classes)",
              file=sys.stderr)
        return 2
    preds, failures = predict_files(model, args.videos, names, top_k=args.top_k, batch_size=args.batch_size)
    for path, reason in failures:
        print(f"tcvideo predict: skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps({"predictions": [p.to_dict() for p in preds],
                          "skipped": [{"path": p, "reason": r} for p, r in failures]}, indent=2))
    else:
        print(format_text(preds))
    return 1 if failures else 0
