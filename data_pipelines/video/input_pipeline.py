"""Entry points the trainer calls: train / eval iterators and dataset info.

Determinism and resume: the training stream is a pure function of (seed, global
position). Global position p = step * global_batch_size + slot; epoch e = p // N picks a
seeded permutation of the N training examples, and example perm_e[p % N] fills slot p;
frame sampling and augmentation are seeded by (seed, p), mixup/cutmix by (seed, p // group size). So batch `step` never depends on what was produced before it: an iterator
started at `start_step` yields exactly the batches an uninterrupted one yields from that
step on, on any number of hosts (process i takes slots [i*b, (i+1)*b) of every global batch).
"""
from __future__ import annotations

from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf

from data_pipelines.video import augment, get_dataset, sampling, splits
from data_pipelines.video.annotations import prettify_class_name
from tcvideo.core.config import InputError
from tcvideo.core.sharding import process_share


def default_data_config() -> ml_collections.ConfigDict:
    """All data fields with defaults following the official TC-CLIP recipe (16 x 224 px)."""
    c = ml_collections.ConfigDict()
    c.name = "synthetic"  # 'synthetic', 'video_folder' or any registered dataset
    c.data_dir = ""  # video_folder: the built version folder (.../video_folder/<config>/1.0.0)
    c.train_split = "train"
    c.test_split = "test"
    c.num_frames = 16
    c.input_size = 224
    c.short_side = 256  # build-time short side of stored frames (video_folder)
    c.test_short_side = 0  # 1-crop test resize; 0 = input_size * 256 / 224
    c.flip = True  # False for SSv2 (direction words in its labels)
    c.normalization = "imagenet"  # or 'clip'
    c.color_jitter_p = 0.8
    c.grayscale_p = 0.2
    c.mixup_alpha = 0.8
    c.cutmix_alpha = 1.0
    c.mixup_switch_prob = 0.5
    c.mixup_prob = 1.0
    c.label_smoothing = 0.1
    # Official split files (see splits.py): a `path label` list selects the videos of train_split /
    # test_split and gives their labels, ids of class_names_file (`id,name` CSV), whose names then
    # replace the dataset's. class_names_file without a list keeps the examples of its classes only
    # (base / novel halves from `*_base_labels.csv`, `*_novel_labels.csv`).
    c.train_list = ""  # e.g. train1_few_shot_16.txt, fs_base_s1_train.txt
    c.test_list = ""  # e.g. val1.txt, base_val.txt, novel_val.txt, ZS_split1_K600_eval.txt
    c.class_names_file = ""  # e.g. hmdb_51_labels.csv, hmdb_51_base_labels.csv, ZS_split1_K600.csv
    c.few_shot_k = 0  # > 0: a seeded draw of K shots per class from the training examples (an option;
    c.few_shot_seed = 0  # the recipes use the official lists instead)
    c.multi_clip_rule = "even"  # 'even' (deterministic) | 'official' (every clip a train-rule draw; TC-CLIP recipes)
    c.shuffle_buffer = 0  # unused: the sampler shuffles the whole split exactly (see module doc)
    c.prefetch = 2
    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.classes = ()  # explicit class names, or the first num_classes (0 = all 14)
    c.synthetic.num_classes = 0
    c.synthetic.videos_per_class = 16
    c.synthetic.test_videos_per_class = 4
    c.synthetic.num_frames = 16
    c.synthetic.resolution = (64, 64)
    c.synthetic.seed = 0
    return c


# ----------------------------------------------------------------------------- split views

def _split_view(config, split: str, train: bool):
    """(source, example indices [M], their labels int32 [M], class names) after the split files /
    few-shot draw. Raises ``splits.SplitFileError`` naming the config field of a bad file."""
    ds = get_dataset(config.name, config=config)
    src = ds.split(split)
    names = [prettify_class_name(n) for n in ds.class_names]
    idx, labels = np.arange(len(src)), np.asarray(src.labels, np.int32)
    list_field = "train_list" if train else "test_list"
    list_path = config.get(list_field, "")
    if config.get("class_names_file", ""):
        file_names = splits.load_class_file(config.class_names_file, "class_names_file")
        if list_path:
            idx, labels = splits.select_listed(src.paths, list_path, len(file_names), list_field)
        else:
            idx, labels = splits.select_classes(ds.class_names, labels, file_names, config.class_names_file,
                                                "class_names_file")
        names = list(file_names)
    elif list_path:
        idx, labels = splits.select_listed(src.paths, list_path, len(names), list_field)
    if train and config.few_shot_k:
        pick = splits.few_shot_indices(labels, config.few_shot_k, config.few_shot_seed)
        idx, labels = idx[pick], labels[pick]
    return src, idx, labels, names


def dataset_info(config) -> dict:
    """{'num_classes', 'class_names', 'num_examples': {split: n}} after subsetting."""
    out = {"num_examples": {}}
    for split, train in ((config.train_split, True), (config.test_split, False)):
        _, idx, _, names = _split_view(config, split, train)
        out["num_examples"][split] = int(len(idx))
        out["class_names"] = names
    out["num_classes"] = len(out["class_names"])
    return out


def _reraising_input_errors(gen):
    """(generator function that records the InputError it raises, wrapper of the dataset's numpy iterator)
    : tf.data turns an exception of the generator into a tf error holding pages of traceback; the wrapper
    raises the recorded InputError (one line naming the file) in its place, at the same batch."""
    failed: list = []

    def recording():
        try:
            yield from gen()
        except InputError as e:
            failed.append(e)
            raise

    def numpy_batches(it):
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception:  # noqa: BLE001
                if failed:
                    raise failed[0] from None
                raise
            yield batch

    return recording, numpy_batches


def _decode(frames, is_jpeg: bool, count: int):
    if not is_jpeg:
        return frames
    # Unrolled over the static frame count: cheaper than map_fn for a handful of frames.
    return tf.stack([tf.io.decode_jpeg(frames[k], channels=3) for k in range(count)])


# ----------------------------------------------------------------------------- train

def make_train_iterator(config: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                        start_step: int = 0, process_index: int = 0, process_count: int = 1,
                        mixup_group_size: int = 0) -> Iterator[dict]:
    """Endless training batches for this process.

    Yields {'video': float32 [b, T, S, S, 3] normalised, 'label': int32 [b],
    'targets': float32 [b, num_classes]} with b = global_batch_size // process_count.
    mixup_group_size g: mixup / cutmix draw (lambda, mixup-or-cutmix, box, partners) once per g consecutive
    clips (the trainer's per-device micro-batch, as the official per-GPU draw); 0 = once per host batch.
    """
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} not divisible by {process_count} processes")
    b = global_batch_size // process_count
    g = int(mixup_group_size) or b
    if b % g:
        raise ValueError(f"host batch {b} is not a multiple of the mixup group size {g}")
    src, idx, labels, names = _split_view(config, config.train_split, train=True)
    if len(idx) == 0:
        raise ValueError("empty training split")
    num_classes, t, size = len(names), int(config.num_frames), int(config.input_size)

    def gen():
        lo, hi = process_index * b, (process_index + 1) * b
        step = start_step
        while True:
            for slot in range(lo, hi):
                p = step * global_batch_size + slot
                e, k = p // len(idx), p % len(idx)
                j = int(_permutation(seed, e, len(idx))[k])
                i = int(idx[j])
                rng = np.random.default_rng([seed, p, 1])
                frame_idx = sampling.train_indices(src.num_frames(i), t, rng.random(t))
                label = int(labels[j])
                yield p, src.get_frames(i, frame_idx), label
            step += 1

    gen, numpy_batches = _reraising_input_errors(gen)
    frames_spec = (tf.TensorSpec([t], tf.string) if src.is_jpeg else tf.TensorSpec([t, None, None, 3], tf.uint8))
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec([], tf.int64), frames_spec, tf.TensorSpec([], tf.int32)))

    def per_clip(p, frames, label):
        video = augment.train_transform(
            _decode(frames, src.is_jpeg, t), tf.stack([tf.constant(seed, tf.int64), p]), input_size=size,
            flip=config.flip, color_jitter_p=config.color_jitter_p, grayscale_p=config.grayscale_p,
            normalization=config.normalization)
        return p, tf.ensure_shape(video, [t, size, size, 3]), label

    def per_group(p, video, label):
        # One draw per group of `g` consecutive clips (the official draws per GPU micro-batch), seeded by
        # the group's global index p // g: a function of (seed, step), whatever the resume point.
        mix_seed = tf.stack([tf.constant(seed + 7919, tf.int64), p[0] // g])
        video, targets = augment.mixup_cutmix(
            video, label, mix_seed, num_classes=num_classes, mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha, switch_prob=config.mixup_switch_prob,
            label_smoothing=config.label_smoothing, prob=config.mixup_prob)
        return {"video": video, "label": label, "targets": targets}

    def merge(batch):  # [b // g, g, ...] -> [b, ...]
        return {k: tf.reshape(v, tf.concat([[b], tf.shape(v)[2:]], 0)) for k, v in batch.items()}

    ds = ds.map(per_clip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(g, drop_remainder=True).map(per_group, num_parallel_calls=2, deterministic=True)
    ds = ds.batch(b // g, drop_remainder=True).map(merge)
    ds = ds.prefetch(config.prefetch)
    return numpy_batches(ds.as_numpy_iterator())


_PERM_CACHE: dict = {}


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    key = (seed, epoch, n)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        _PERM_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERM_CACHE[key]


# ----------------------------------------------------------------------------- eval

def make_eval_iterator(config, *, split: str, batch_size: int, num_clips: int = 1, num_crops: int = 1,
                       process_index: int = 0, process_count: int = 1) -> Iterator[dict]:
    """One pass over `split`, every example exactly once across processes.

    batch_size is global (b = batch_size // process_count per process, as for training).
    Yields {'video': float32 [b, V, T, S, S, 3] with V = num_clips * num_crops views
    (clip-major), 'label': int32 [b], 'mask': bool [b]}; padding rows have mask False.
    """
    if batch_size % process_count:
        raise ValueError(f"batch {batch_size} not divisible by {process_count} processes")
    b = batch_size // process_count
    src, idx, labels, _ = _split_view(config, split, train=False)
    t, size = int(config.num_frames), int(config.input_size)
    pos, _ = process_share(len(idx), b, process_index, process_count, min_batches=1)

    def gen():
        for q in pos:
            valid = q >= 0
            i = int(idx[q if valid else 0]) if len(idx) else None
            if i is None:
                raise ValueError(f"split {split!r} is empty")
            rng = np.random.default_rng([0, i]) if config.multi_clip_rule == "official" else None
            fi = sampling.multi_clip_indices(src.num_frames(i), t, num_clips, config.multi_clip_rule, rng)
            label = int(labels[q if valid else 0])
            yield src.get_frames(i, fi.reshape(-1)), label, bool(valid)

    gen, numpy_batches = _reraising_input_errors(gen)
    v = num_clips * num_crops
    frames_spec = (tf.TensorSpec([num_clips * t], tf.string) if src.is_jpeg
                   else tf.TensorSpec([num_clips * t, None, None, 3], tf.uint8))
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        frames_spec, tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.bool)))

    def per_example(frames, label, valid):
        frames = _decode(frames, src.is_jpeg, num_clips * t)
        views = [augment.test_transform(frames[c * t:(c + 1) * t], input_size=size, num_crops=num_crops,
                                        short_side=config.test_short_side or None,
                                        normalization=config.normalization) for c in range(num_clips)]
        video = tf.reshape(tf.stack(views), [v, t, size, size, 3])
        return {"video": video, "label": label, "mask": valid}

    ds = ds.map(per_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return numpy_batches(ds.batch(b).prefetch(config.prefetch).as_numpy_iterator())
