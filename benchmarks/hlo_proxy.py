"""Accelerator proxy a CPU can measure: op counts of the compiled TC-CLIP and ViFi-CLIP programs.

    python benchmarks/hlo_proxy.py --frames 8,16 --batch 16 --out benchmarks/results/hlo_proxy.json
    python benchmarks/hlo_proxy.py --frames 8 --batch 16 --time-batch 1 ...   # plus CPU throughput, same run

For each variant, frame count and program (inference: ``encode_video``; train: one AdamW step), the
program is compiled from abstract inputs (``jax.jit(f).lower(...).compile()``: nothing runs) and two
texts are counted:

- the lowered StableHLO (what any backend receives): ``sort``, ``top_k``, ``scatter``, ``gather``,
  ``while``, ``dot_general`` ops;
- XLA:CPU's optimized HLO: ``kernels`` (instructions of non-fused computations other than parameters,
  constants, tuples, bitcasts: each is one launched kernel or library call), ``fusion`` instructions
  and, inside any computation, ``sort``, ``TopK`` custom calls, ``scatter``, ``gather``, ``while``, ``dot``.

Counts are static (per program text, not per executed iteration). The TC-CLIP / ViFi-CLIP ratio of each
count is printed and stored. ``--time-batch B`` also times both variants' inference and train step on
concrete inputs of batch B, round-robin in this process (``model_bench.bench_point``), for the
throughput ratios. Run it against another checkout's ``tcvideo`` (PYTHONPATH) for a "before" row;
``python benchmarks/hlo_proxy.py --markdown before=a.json after=b.json`` prints README rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections import Counter

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_bench  # noqa: E402  (same folder)
from tcvideo.tc_clip import model as tcm  # noqa: E402

BOOKKEEPING = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "partition-id",
               "replica-id", "opt-barrier"}
# '(?<!#)': an op, not its attribute ('"stablehlo.gather"(...) <{dimension_numbers = #stablehlo.gather<...>').
STABLEHLO_OPS = {"sort": r"(?<!#)stablehlo\.sort\b", "top_k": r"chlo\.top_k\b|@mhlo\.topk|\"mhlo\.topk\"",
                 "scatter": r"(?<!#)stablehlo\.scatter\b",
                 "gather": r"(?<!#)stablehlo\.gather\b|(?<!#)stablehlo\.dynamic_gather\b",
                 "while": r"(?<!#)stablehlo\.while\b", "dot_general": r"(?<!#)stablehlo\.dot_general\b"}
_COMP_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")


def _opcode(rhs: str) -> str:
    """Opcode of an HLO instruction's right-hand side 'TYPE opcode(operands), attrs'."""
    i = 0
    if rhs.startswith("("):  # tuple type: skip the balanced parentheses
        depth = 0
        for i, ch in enumerate(rhs):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        i += 1
    else:
        i = rhs.find(" ")
    m = re.match(r"\s*([a-z][a-z0-9\-]*)\(", rhs[i:])
    return m.group(1) if m else ""


def hlo_counts(text: str) -> dict:
    """Op counts of an optimized HLO module text (``compiled.as_text()``)."""
    comps: dict[str, list[tuple[str, str]]] = {}
    fused: set[str] = set()
    current = None
    for line in text.splitlines():
        h = _COMP_HEADER.match(line)
        if h:
            current = h.group(2)
            comps[current] = []
            continue
        if line.startswith("}"):
            current = None
            continue
        m = _INSTR.match(line) if current else None
        if m:
            op = _opcode(m.group(2))
            comps[current].append((op, m.group(2)))
            if op == "fusion":
                fused.update(re.findall(r"calls=%?([\w.\-]+)", m.group(2)))
    every = Counter(op for instrs in comps.values() for op, _ in instrs)
    topk = sum(1 for instrs in comps.values() for op, rhs in instrs
               if op == "custom-call" and 'custom_call_target="TopK"' in rhs)
    # Computations called by fusions or as comparators/reducers are not launched on their own.
    applied = set()
    for instrs in comps.values():
        for _, rhs in instrs:
            applied.update(re.findall(r"(?:to_apply|called_computations=\{|comparator)=?%?([\w.\-]+)", rhs))
    launched = [name for name in comps if name not in fused and name not in applied]
    kernels = sum(1 for name in launched for op, _ in comps[name] if op not in BOOKKEEPING)
    return {"kernels": kernels, "fusion": every["fusion"], "sort": every["sort"], "topk_custom_call": topk,
            "scatter": every["scatter"], "gather": every["gather"], "while": every["while"], "dot": every["dot"]}


def stablehlo_counts(text: str) -> dict:
    return {name: len(re.findall(pattern, text)) for name, pattern in STABLEHLO_OPS.items()}


def program_counts(variant: str, frames: int, batch: int, clip: str, dtype, overrides: dict,
                   lower_only: bool = False) -> dict:
    """Counts of the inference and train-step programs of one variant, compiled from abstract inputs."""
    cfg = tcm.variant_config(variant, clip=clip, num_frames=frames, **overrides)
    model = tcm.TCCLIP(cfg, dtype=dtype)
    video, ids, labels = model_bench.benchmark_inputs(cfg, batch, concrete=False)
    params = tcm.param_shapes(cfg)
    encode, train_step, tx = model_bench.program_functions(model, ids, labels)
    opt = jax.eval_shape(tx.init, params)
    out = {}
    for program, fn, args in (("inference", encode, (params, video)), ("train", train_step, (params, opt, video))):
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        out[program] = {"stablehlo": stablehlo_counts(lowered.as_text())}
        if not lower_only:
            out[program]["hlo"] = hlo_counts(lowered.compile().as_text())
        out[program]["seconds"] = time.perf_counter() - t0
        print(f"  {variant} T={frames} {program}: {json.dumps(out[program])}", flush=True)
    return out


def ratios(tc: dict, base: dict) -> dict:
    """TC-CLIP / ViFi-CLIP of every count (None where ViFi-CLIP has none)."""
    return {k: (tc[k] / base[k] if base[k] else None) for k in tc}


HLO_KEYS = ("kernels", "fusion", "sort", "topk_custom_call", "scatter", "gather", "while", "dot")


def markdown_rows(results: dict, label: str) -> list[str]:
    """'| label | T | program | TC-CLIP count (TC/ViFi) ... |' rows of one results file's XLA:CPU counts."""
    rows = []
    for frames, per in results["counts"].items():
        for program in ("inference", "train"):
            tc, base = per["tc_clip"][program]["hlo"], per["vifi_clip"][program]["hlo"]
            cells = [f"{tc[k]} ({tc[k] / base[k]:.2f})" if base[k] else f"{tc[k]} (vifi {base[k]})" for k in HLO_KEYS]
            rows.append(f"| {label} | {frames} | {program} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--markdown"]:  # --markdown LABEL=results.json ...: README rows
        for item in sys.argv[2:]:
            label, _, path = item.partition("=")
            with open(path) as fh:
                print("\n".join(markdown_rows(json.load(fh), label)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", default="8,16")
    ap.add_argument("--batch", type=int, default=16, help="batch of the compiled (not run) programs")
    ap.add_argument("--clip", default="ViT-B/16")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--time-batch", type=int, default=0, help="also time inference and training at this batch")
    ap.add_argument("--time-frames", default="", help="frame counts to time (default: --frames)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lower-only", action="store_true", help="StableHLO counts only (no XLA compilation)")
    ap.add_argument("--label", default="", help="free text stored with the results (e.g. the commit)")
    ap.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                    help="TC-CLIP config field for both variants (small CLIPs: context_tokens=8); repeatable")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    overrides = dict(model_bench._parse_override(o) for o in a.override)
    dtype = getattr(jnp, a.dtype)
    import tcvideo
    meta = {"label": a.label, "tcvideo": os.path.dirname(tcvideo.__file__), "host": platform.node(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__, "dtype": a.dtype, "clip": a.clip,
            "compiled_batch": a.batch, "overrides": overrides, "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:]}
    counts, timing = {}, []
    for frames in map(int, a.frames.split(",")):
        per = {v: program_counts(v, frames, a.batch, a.clip, dtype, overrides, a.lower_only) for v in ("vifi_clip", "tc_clip")}
        for program in ("inference", "train"):
            for kind in ("stablehlo",) if a.lower_only else ("stablehlo", "hlo"):
                tc, base = per["tc_clip"][program][kind], per["vifi_clip"][program][kind]
                r = ratios(tc, base)
                print(f"T={frames} {program} {kind}: tc_clip {tc} | vifi_clip {base} | ratio "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r.items() if v is not None), flush=True)
        counts[str(frames)] = per
    if a.time_batch:
        peak = model_bench.peak_matmul_flops(jnp.float32, 2048, a.repeats)
        for frames in map(int, (a.time_frames or a.frames).split(",")):
            rows = model_bench.bench_point(["vifi_clip", "tc_clip"], frames, a.time_batch, dtype, a.repeats, 1,
                                           a.clip, False, peak, overrides)
            base, tc = rows
            for kind in ("inference", "train"):
                tc[f"{kind}_ratio_to_vifi"] = tc[f"{kind}_clips_per_s"] / base[f"{kind}_clips_per_s"]
                tc[f"{kind}_ratio_to_vifi_paired"] = model_bench.paired_ratio(base[f"{kind}_seconds_runs"],
                                                                              tc[f"{kind}_seconds_runs"])
                print(f"T={frames} B={a.time_batch} tc_clip/vifi_clip {kind} throughput ratio "
                      f"{tc[f'{kind}_ratio_to_vifi']:.3f} (paired {tc[f'{kind}_ratio_to_vifi_paired']:.3f})",
                      flush=True)
            timing += rows
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"meta": meta, "counts": counts, "timing": timing}, fh, indent=2)


if __name__ == "__main__":
    main()
