"""Training input pipeline throughput vs. the JPEG-decoding bound, measured in one run.

Generates synthetic mp4s, builds them with the VideoFolder TFDS builder, then times
  1. pipeline: make_train_iterator (read, decode, sample, augment, mixup, batch);
  2. decode bound: the same records and sampled frames, only JPEG-decoded (same tf.data
     parallelism), i.e. what any pipeline on these files must pay;
  3. synthetic: the in-memory synthetic source (no JPEG), as used by tests and the demo.

    python benchmarks/input_pipeline_bench.py --out /tmp/bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def _rate(it, batch: int, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--workdir", default="", help="where to write videos / dataset (default: a temp dir)")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--videos_per_class", type=int, default=4)
    ap.add_argument("--video_frames", type=int, default=48)
    ap.add_argument("--video_hw", type=int, nargs=2, default=(128, 176))
    ap.add_argument("--short_side", type=int, default=128)
    ap.add_argument("--num_frames", type=int, default=8)
    ap.add_argument("--input_size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from data_pipelines.video import get_dataset, sampling, synthetic
    from data_pipelines.video.input_pipeline import default_data_config, make_train_iterator
    from data_pipelines.video.video_folder import VideoFolder, VideoFolderConfig

    work = args.workdir or tempfile.mkdtemp(prefix="tcvideo_bench_")
    t0 = time.perf_counter()
    paths = synthetic.write_mp4_dataset(os.path.join(work, "src"), synthetic.class_list(args.classes),
                                        splits={"train": args.videos_per_class}, num_frames=args.video_frames,
                                        height=args.video_hw[0], width=args.video_hw[1])
    t_write = time.perf_counter() - t0
    cfg = VideoFolderConfig(name="bench", video_dir=paths["video_dir"], annotations={"train": paths["train"]},
                            annotation_format="mmaction", class_names_file=paths["class_names"],
                            short_side=args.short_side)
    builder = VideoFolder(config=cfg, data_dir=os.path.join(work, "tfds"))
    t0 = time.perf_counter()
    builder.download_and_prepare()
    t_build = time.perf_counter() - t0
    n_videos = builder.info.splits["train"].num_examples

    c = default_data_config()
    c.name, c.data_dir, c.num_frames, c.input_size = "video_folder", builder.data_dir, args.num_frames, args.input_size
    pipeline = _rate(make_train_iterator(c, global_batch_size=args.batch, seed=0), args.batch, args.warmup, args.steps)

    # Decode-only bound: same record reads and frame sampling, then only decode_jpeg.
    src = get_dataset("video_folder", data_dir=builder.data_dir).split("train")
    t = args.num_frames

    def gen():
        p = 0
        while True:
            i = p % len(src)
            rng = np.random.default_rng([0, p, 1])
            yield src.get_frames(i, sampling.train_indices(src.num_frames(i), t, rng.random(t)))
            p += 1

    ds = tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec([t], tf.string))
    ds = ds.map(lambda f: tf.stack([tf.io.decode_jpeg(f[k], channels=3) for k in range(t)]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(args.batch, drop_remainder=True).prefetch(2)
    bound = _rate(ds.as_numpy_iterator(), args.batch, args.warmup, args.steps)

    s = default_data_config()
    s.num_frames, s.input_size = args.num_frames, min(args.input_size, 56)
    s.synthetic.num_frames, s.synthetic.resolution = 16, (64, 64)
    synth = _rate(make_train_iterator(s, global_batch_size=args.batch, seed=0), args.batch, args.warmup, args.steps)

    res = {
        "cpu_count": os.cpu_count(),
        "videos": n_videos, "video_frames": args.video_frames, "stored_short_side": args.short_side,
        "clip": f"{args.num_frames}x{args.input_size}x{args.input_size}", "batch": args.batch,
        "write_mp4_s": round(t_write, 2), "build_s": round(t_build, 2),
        "build_videos_per_s": round(n_videos / t_build, 2),
        "train_pipeline_clips_per_s": round(pipeline, 1),
        "jpeg_decode_bound_clips_per_s": round(bound, 1),
        "pipeline_over_bound": round(pipeline / bound, 3),
        "synthetic_clips_per_s": round(synth, 1),
        "synthetic_clip": f"{s.num_frames}x{s.input_size}x{s.input_size} from 16x64x64",
    }
    width = max(len(k) for k in res)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in res.items()))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
