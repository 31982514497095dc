"""Streaming OV-OAD frames/s at the released size (768-d ViT-B/16 features, 32-frame window, 8 heads,
4 + 6 + 2 blocks, text 12 x 512 with 64-wide adapters, plain-CLIP branch on), one ``OnlineDetector.push`` per
frame (batch 1, the whole window through the model each frame, as the released model needs), random weights.

    python benchmarks/ov_oad_stream_bench.py --frames 100 --out benchmarks/results/cpu_ov_oad_stream.json

Paper: 292 frames/s (its hardware; THUMOS'14 inference, features precomputed). Feature extraction is not
included here either.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from tcvideo.ov_oad import model as oad, stream as oad_stream


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100, help="timed pushes after warm-up")
    ap.add_argument("--classes", type=int, default=21, help="vocabulary size (THUMOS'14: 21)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    cfg = oad.OVOADConfig()  # the released model
    params = jax.tree_util.tree_map(np.asarray, oad.init_params(cfg, jax.random.PRNGKey(0)))
    det = oad_stream.OnlineDetector(cfg, params, [f"class {i}" for i in range(a.classes)])
    feats = np.random.default_rng(0).standard_normal((a.frames + cfg.window, cfg.feature_dim)).astype(np.float32)
    t0 = time.perf_counter()
    for f in feats[:cfg.window]:  # warm-up (compilation) and a full buffer
        det.push(f)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in feats[cfg.window:]:
        det.push(f)
    dt = time.perf_counter() - t0
    row = {"frames_per_s": a.frames / dt, "ms_per_frame": 1e3 * dt / a.frames, "timed_frames": a.frames,
           "warmup_s": warm, "classes": a.classes, "backend": jax.default_backend(),
           "device": str(jax.devices()[0].device_kind), "cpu": platform.processor() or platform.machine(),
           "jax": jax.__version__, "paper_frames_per_s": 292}
    print(json.dumps(row, indent=1))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(row, fh, indent=1)


if __name__ == "__main__":
    main()
