"""``tcvideo extract-features``: CLIP frame features of videos (OV-OAD, FS-CAL), the project's one
feature extractor.

    tcvideo extract-features --clip=ViT-B-16.pt --videos=DIR_OR_LIST --out=DIR [--split=test] [--batch=64]
        [--fps=4] [--format=tfds|npy]

Frames are taken at 4 fps at the centre of every 0.25 s bin (the nearest earlier decoded frame), resized
to the CLIP resolution (bicubic, no crop), CLIP-normalised; the stored feature is the CLS token after
ln_post without the visual projection (768-d for ViT-B/16), float16, with fps and duration.
``--format=tfds`` (default) writes a TFDS dataset (what OV-OAD reads); ``--format=npy`` writes one
``<video>.npy`` float16 [T, D] per video (memory-mappable; what FS-CAL reads, with
``fs_cal.snippets_per_second`` = ``--fps``; OV-OAD reads it too, at 4 fps).
``--clip`` is whatever ``tcvideo.clip.loader.load_clip`` reads (an OpenAI .pt file, a Hugging Face CLIP
dir or a tcvideo CLIP model dir); ``random:PRESET`` builds a randomly initialised CLIP (tests and demos only).
``--videos`` is a directory (its files with one of ``data_pipelines.video.annotations.VIDEO_EXTENSIONS``,
the extensions the dataset builder accepts) or a text file with one path a line.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import numpy as np

from data_pipelines.video.annotations import VIDEO_EXTENSIONS


def list_videos(src: str) -> list[str]:
    """A directory's video files (sorted) or the paths listed in a text file."""
    if os.path.isdir(src):
        return sorted(os.path.join(src, f) for f in os.listdir(src) if f.lower().endswith(VIDEO_EXTENSIONS))
    with open(src) as f:
        return [line.strip() for line in f if line.strip()]


def clip_from_arg(spec: str):
    """``--clip`` -> (CLIPConfig, params): ``random:PRESET`` or a checkpoint for the one CLIP loader."""
    if spec.startswith("random:"):
        import jax
        from tcvideo.clip import model as clip_lib
        cfg = clip_lib.get_config(spec.split(":", 1)[1])
        return cfg, clip_lib.init_params(cfg, jax.random.PRNGKey(0))
    from tcvideo.clip.loader import load_clip
    return load_clip(spec)


def sample_frames(frames: np.ndarray, src_fps: float, duration: float, fps: float = 4.0) -> np.ndarray:
    """Decoded frames [N, H, W, 3] at src_fps -> the frames at the bin centres (i + 0.5) / fps."""
    from tcvideo.clip.frame_encoder import frame_times
    t = frame_times(duration, fps)
    idx = np.clip(np.floor(t * src_fps + 1e-6).astype(np.int64), 0, len(frames) - 1)
    return frames[idx]


def extract(paths: Sequence[str], encoder, *, batch: int = 64, fps: float = 4.0):
    """Yield {'name', 'rgb' [T, D] float32, 'fps', 'duration'} per video (bad files: reported and skipped)."""
    from data_pipelines.video.video_io import VideoDecodeError, decode_video
    from tcvideo.core.console import progress
    for p in progress(paths, "extract-features", unit="videos"):
        try:
            v = decode_video(p, short_side=None)
        except VideoDecodeError as e:
            print(f"extract-features: skipped {p}: {e}", file=sys.stderr)
            continue
        dur = v.duration if v.duration > 0 else len(v.frames) / max(v.source_fps, 1e-6)
        frames = sample_frames(v.frames, v.source_fps, dur, fps)
        feats = np.concatenate([encoder(frames[i:i + batch]) for i in range(0, len(frames), batch)])
        yield {"name": os.path.splitext(os.path.basename(p))[0], "rgb": feats, "fps": fps, "duration": dur}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="tcvideo extract-features", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", required=True, help="OpenAI CLIP .pt, Hugging Face CLIP dir, tcvideo CLIP dir, or random:PRESET")
    ap.add_argument("--videos", required=True, help="directory of videos or a text file with one path a line")
    ap.add_argument("--out", required=True, help="output directory of the TFDS dataset")
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--fps", type=float, default=4.0, help="features per second (OV-OAD: 4)")
    ap.add_argument("--format", choices=("tfds", "npy"), default="tfds",
                    help="a TFDS dataset, or one <video>.npy [T, D] per video")
    args = ap.parse_args(list(argv) if argv is not None else None)
    from data_pipelines.temporal.features import write_tfds
    from tcvideo.clip.frame_encoder import FrameEncoder
    if not os.path.exists(args.videos):
        print(f"error: --videos: no such file or directory {args.videos!r}", file=sys.stderr)
        return 2
    paths = list_videos(args.videos)
    if not paths:
        print(f"error: --videos: no video in {args.videos!r}", file=sys.stderr)
        return 2
    cfg, params = clip_from_arg(args.clip)
    enc = FrameEncoder(cfg, params)
    examples = lambda: extract(paths, enc, batch=args.batch, fps=args.fps)
    if args.format == "npy":
        os.makedirs(args.out, exist_ok=True)
        n = 0
        for ex in examples():
            np.save(os.path.join(args.out, ex["name"] + ".npy"), ex["rgb"].astype(np.float16))
            n += 1
        print(f"wrote {n} of {len(paths)} videos' features to {args.out} ({args.fps:g} per second)")
        return 0 if n == len(paths) else 1
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()  # the one bar is extract()'s, per video
    out = write_tfds(args.out, examples, feature_dim=cfg.vision_width, split=args.split)
    print(f"wrote {len(paths)} videos' features to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
