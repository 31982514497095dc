"""Throughput of TC-CLIP variants: inference and training clips/s, GFLOPs per clip, achieved FLOP/s.

    python benchmarks/model_bench.py --variants vifi_clip,tc_clip,tc_clip_light --frames 8,16 \
        --batch 1,8 --dtype bfloat16 --peer --out results.json

Warm-up (compilation) is excluded; each number is the median of --repeats timed runs of --iters steps.
Peak matmul FLOP/s is measured in the same run (a large square matmul in the same dtype). Peak memory
is XLA's own account of the compiled program (arguments + outputs + temporaries - aliased bytes).
``--peer``: the same per-frame ViT encoding (batch x frames images) in PyTorch (`transformers`
`CLIPVisionModel`, random weights, same thread count as XLA's CPU client) next to tcvideo's CLIP
vision tower, as a throughput ratio.
"""
from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tcvideo.tc_clip import flops as flops_lib
from tcvideo.tc_clip import model as tcm


def _time(fn, repeats: int, iters: int) -> float:
    """Median seconds per call of fn() (fn must block)."""
    return statistics.median(interleaved({"fn": fn}, repeats, iters)["fn"])


def interleaved(fns: dict, repeats: int, iters: int, warmup: bool = True) -> dict:
    """name -> seconds per call of each timed run, timing the callables round-robin (each must block).

    Why round-robin: on a shared or throttled machine the speed drifts by 10-20 % over minutes;
    timing every candidate in each round puts the drift into all of them, so their ratios hold.
    With ``warmup`` each callable is called once first (compilation and warm-up, not timed).
    """
    for fn in fns.values() if warmup else ():
        fn()
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            runs[name].append((time.perf_counter() - t0) / iters)
    return runs


def peak_bytes(compiled) -> int:
    """Bytes XLA reserves for one call of a compiled program (arguments + outputs + temporaries - aliased)."""
    m = compiled.memory_analysis()
    if m is None:
        return -1
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def compile_once(fn, *args):
    """(compiled program, FLOPs per call). One compilation serves timing, memory and, on CPU, the FLOP count."""
    compiled = jax.jit(fn).lower(*args).compile()
    if jax.devices()[0].platform == "cpu":
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return compiled, float(cost.get("flops", 0.0))
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), args)
    return compiled, flops_lib.compiled_flops(fn, *abstract)  # accelerator cost analyses miss fused kernels


def paired_ratio(base_runs: list, runs: list) -> float:
    """Median over rounds of base time / time: the two ran back to back in each round, so a slow
    stretch of the machine cancels in each round's ratio."""
    return statistics.median(b / t for b, t in zip(base_runs, runs))


def peak_matmul_flops(dtype, n: int, repeats: int) -> float:
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    sec = _time(lambda: f(a).block_until_ready(), repeats, 3)
    return 2 * n ** 3 / sec


def benchmark_inputs(cfg, batch: int, concrete: bool = True):
    """(video [B, T, S, S, 3], class-prompt ids [8, L], labels [B]); video abstract unless ``concrete``."""
    c = cfg.clip
    shape = (batch, cfg.num_frames, c.image_resolution, c.image_resolution, 3)
    video = jax.random.normal(jax.random.PRNGKey(0), shape) if concrete else jax.ShapeDtypeStruct(shape, jnp.float32)
    ids = jnp.zeros((8, cfg.prompt_context_length), jnp.int32).at[:, 0].set(49406).at[:, 5].set(49407)
    return video, ids, jnp.arange(batch) % 8


def program_functions(model, ids: jax.Array, labels: jax.Array):
    """(encode(params, video) -> video embedding, train_step(params, opt_state, video), optimizer): the two
    programs every benchmark measures (one AdamW step on the cross-entropy over 8 class prompts)."""
    tx = optax.adamw(1e-5)

    def encode(p, v):
        return model.apply({"params": p}, v, method=model.encode_video)["video_embedding"]

    def loss_fn(p, v):
        logits = model.apply({"params": p}, v, ids)["logits"].astype(jnp.float32)
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1).mean()

    def train_step(p, o, v):
        loss, g = jax.value_and_grad(loss_fn)(p, v)
        upd, o = tx.update(g, o, p)
        return optax.apply_updates(p, upd), o, loss

    return encode, train_step, tx


def prepare_variant(name: str, frames: int, batch: int, dtype, clip: str, skip_train: bool = False,
                    overrides: Optional[dict] = None) -> dict:
    """Compiled inference (and train-step) callables of one variant plus its static measures."""
    cfg = tcm.variant_config(name, clip=clip, num_frames=frames, **(overrides or {}))
    params = tcm.init_params(cfg, num_classes=4)
    model = tcm.TCCLIP(cfg, dtype=dtype)
    video, ids, labels = benchmark_inputs(cfg, batch)

    encode, train_step, tx = program_functions(model, ids, labels)
    t0 = time.perf_counter()
    enc, enc_flops = compile_once(encode, params, video)
    enc(params, video).block_until_ready()
    print(f"  {name} T={frames} B={batch}: inference compile+first run {time.perf_counter() - t0:.1f}s", flush=True)
    out = {"row": {"variant": name, "frames": frames, "batch": batch, "inference_peak_bytes": peak_bytes(enc),
                   "vision_gflops_per_clip": enc_flops / batch / 1e9},
           "infer": lambda: enc(params, video).block_until_ready()}
    if skip_train:
        return out

    opt = tx.init(params)
    t0 = time.perf_counter()
    step_fn, out["row"]["train_flops_per_step"] = compile_once(train_step, params, opt, video)
    out["row"]["train_peak_bytes"] = peak_bytes(step_fn)
    state = {"p": params, "o": opt}

    def one():
        state["p"], state["o"], loss = step_fn(state["p"], state["o"], video)
        loss.block_until_ready()

    one()
    print(f"  {name} T={frames} B={batch}: train compile+first step {time.perf_counter() - t0:.1f}s", flush=True)
    out["train"] = one
    return out


def bench_point(variants: list, frames: int, batch: int, dtype, repeats: int, iters: int, clip: str,
                skip_train: bool, peak: float, overrides: Optional[dict] = None) -> list:
    """Rows for one (frames, batch): every variant's inference (then training) timed round-robin."""
    prepared = [prepare_variant(v, frames, batch, dtype, clip, skip_train, overrides) for v in variants]
    # prepare_variant ran every callable once already (compilation, first run).
    inf = interleaved({p["row"]["variant"]: p["infer"] for p in prepared}, repeats, iters, warmup=False)
    train = {} if skip_train else interleaved({p["row"]["variant"]: p["train"] for p in prepared}, repeats, iters,
                                              warmup=False)
    rows = []
    for p in prepared:
        r = dict(p["row"])
        r["inference_seconds_runs"] = inf[r["variant"]]
        sec = statistics.median(inf[r["variant"]])
        r["inference_clips_per_s"] = batch / sec
        r["inference_flops_per_s"] = r["vision_gflops_per_clip"] * 1e9 * batch / sec
        r["inference_mfu"] = r["inference_flops_per_s"] / peak
        if r["variant"] in train:
            r["train_seconds_runs"] = train[r["variant"]]
            sec = statistics.median(train[r["variant"]])
            r["train_clips_per_s"] = batch / sec
            r["train_flops_per_s"] = r["train_flops_per_step"] / sec
            r["train_mfu"] = r["train_flops_per_s"] / peak
        rows.append(r)
        print(json.dumps(r), flush=True)
    del prepared
    gc.collect()  # free this point's train states before the next point allocates its own
    return rows


def bench_peer(frames: int, batch: int, repeats: int, iters: int, clip: str = "ViT-B/16") -> dict:
    """Per-frame ViT-B/16 encoding of [batch * frames, 224, 224, 3] images: tcvideo (JAX, float32) vs
    PyTorch `transformers.CLIPVisionModel` (float32, no grad) with the same number of threads."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from tcvideo.clip import model as clip_lib
    n = batch * frames
    c = clip_lib.get_config(clip)
    vit = clip_lib.VisionTransformer(c)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, c.image_resolution, c.image_resolution, 3))
    p = vit.init(jax.random.PRNGKey(1), x[:1])["params"]
    f = jax.jit(lambda p, x: vit.apply({"params": p}, x))

    threads = os.cpu_count() if jax.devices()[0].platform == "cpu" else torch.get_num_threads()
    torch.set_num_threads(threads)
    hf = CLIPVisionModel(CLIPVisionConfig(hidden_size=c.vision_width, intermediate_size=4 * c.vision_width,
                                          num_hidden_layers=c.vision_layers, num_attention_heads=c.vision_heads,
                                          image_size=c.image_resolution, patch_size=c.patch_size,
                                          hidden_act="quick_gelu")).eval()
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()

    def torch_run():
        with torch.inference_mode():
            hf(pixel_values=xt).pooler_output.sum().item()

    runs = interleaved({"jax": lambda: jax.block_until_ready(f(p, x)), "torch": torch_run}, repeats, iters)
    jax_s, torch_s = statistics.median(runs["jax"]), statistics.median(runs["torch"])
    r = {"peer": f"{clip} per-frame encoding", "images": n, "threads": threads,
         "jax_images_per_s": n / jax_s, "torch_images_per_s": n / torch_s, "jax_over_torch": torch_s / jax_s,
         "jax_over_torch_paired": paired_ratio(runs["torch"], runs["jax"]),
         "torch": torch.__version__, "jax_seconds_runs": runs["jax"], "torch_seconds_runs": runs["torch"]}
    print(json.dumps(r), flush=True)
    return r


def _parse_override(text: str) -> tuple:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise SystemExit(f"--override wants FIELD=VALUE, got {text!r}")
    try:
        return field, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return field, value  # a bare string such as context_summary=random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="vifi_clip,tc_clip,tc_clip_light")
    ap.add_argument("--frames", default="8,16")
    ap.add_argument("--batch", default="8", help="comma-separated batch sizes (a sweep)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--clip", default="ViT-B/16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--matmul-n", type=int, default=4096)
    ap.add_argument("--out", default="")
    ap.add_argument("--skip-train", action="store_true", help="inference only")
    ap.add_argument("--peer", action="store_true", help="also the PyTorch per-frame ViT peer, same run")
    ap.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                    help="TC-CLIP config field for every variant, e.g. context_tokens=8 (small CLIPs); repeatable")
    a = ap.parse_args()
    overrides = dict(_parse_override(o) for o in a.override)
    dtype = getattr(jnp, a.dtype)
    peak = peak_matmul_flops(dtype, a.matmul_n, a.repeats)
    peers, rows = [], []
    sweep = [(f, b) for f in map(int, a.frames.split(",")) for b in map(int, a.batch.split(","))]
    for frames, batch in sweep:
        if a.peer:
            peers.append(bench_peer(frames, batch, a.repeats, a.iters, a.clip))
        rows += bench_point(a.variants.split(","), frames, batch, dtype, a.repeats, a.iters, a.clip,
                            a.skip_train, peak, overrides)
    # The machine's speed drifts (shared hosts, clocks): measure the peak again at the end and divide by
    # the larger of the two, so the MFU is never flattered by a slow peak measurement.
    peak_end = peak_matmul_flops(dtype, a.matmul_n, a.repeats)
    for r in rows:
        for kind in ("inference", "train"):
            if f"{kind}_flops_per_s" in r:
                r[f"{kind}_mfu"] = r[f"{kind}_flops_per_s"] / max(peak, peak_end)
    dev = jax.devices()[0]
    meta = {"device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}", "host": platform.node(),
            "cpu_count": os.cpu_count(), "dtype": a.dtype, "peak_matmul_flops_per_s": max(peak, peak_end),
            "peak_matmul_flops_per_s_start_end": [peak, peak_end], "matmul_n": a.matmul_n,
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:]}
    nan = float("nan")
    print(f"\n{meta}\n{'variant':>14} {'T':>3} {'B':>3} {'infer clips/s':>13} {'infer MFU':>9} "
          f"{'train clips/s':>13} {'train MFU':>9} {'GFLOPs':>7} {'infer MiB':>9} {'train MiB':>9}")
    for r in rows:
        print(f"{r['variant']:>14} {r['frames']:>3} {r['batch']:>3} {r['inference_clips_per_s']:>13.3f} "
              f"{r['inference_mfu']:>9.3f} {r.get('train_clips_per_s', nan):>13.3f} {r.get('train_mfu', nan):>9.3f} "
              f"{r['vision_gflops_per_clip']:>7.1f} {r['inference_peak_bytes'] / 2**20:>9.0f} "
              f"{r.get('train_peak_bytes', -1) / 2**20:>9.0f}")
    for f, b in sweep:
        base = [r for r in rows if (r["frames"], r["batch"]) == (f, b) and r["variant"] == "vifi_clip"]
        for r in rows:
            if base and (r["frames"], r["batch"]) == (f, b) and r["variant"] != "vifi_clip":
                for kind in ("inference", "train"):
                    if f"{kind}_clips_per_s" in r:
                        paired = paired_ratio(base[0][f"{kind}_seconds_runs"], r[f"{kind}_seconds_runs"])
                        r[f"{kind}_ratio_to_vifi_paired"] = paired
                        print(f"T={f} B={b} {r['variant']}/vifi_clip {kind} throughput ratio: "
                              f"{r[f'{kind}_clips_per_s'] / base[0][f'{kind}_clips_per_s']:.3f} "
                              f"(median of per-round ratios {paired:.3f})")
    for r in peers:
        print(f"peer, {r['images']} images, {r['threads']} threads: JAX {r['jax_images_per_s']:.2f} img/s, "
              f"PyTorch {r['torch_images_per_s']:.2f} img/s, ratio {r['jax_over_torch']:.2f} "
              f"(median of per-round ratios {r['jax_over_torch_paired']:.2f})")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"meta": meta, "rows": rows, "peer": peers}, fh, indent=2)


if __name__ == "__main__":
    main()
