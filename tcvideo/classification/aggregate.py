"""Base-to-novel over seeds: the paper's number is the harmonic mean of the 3 seeds' mean base and mean novel
top-1 (not the mean of per-seed harmonic means).

    python -m tcvideo.classification.aggregate runs/b2n_s1 runs/b2n_s2 runs/b2n_s3 [--key fine_tuned]

Each argument is a workdir (or its eval_results.json) of a base-to-novel run; prints and returns the summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np


def harmonic_mean(base: float, novel: float) -> float:
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def read_eval_results(path: str) -> dict:
    """A workdir's eval_results.json (or that file itself); ValueError naming the path."""
    f = os.path.join(path, "eval_results.json") if os.path.isdir(path) else path
    if not os.path.isfile(f):
        raise ValueError(f"{path}: no eval_results.json")
    with open(f) as fh:
        return json.load(fh)


def base2novel_over_seeds(runs: Sequence[dict], key: str = "fine_tuned", names: Sequence[str] = ()) -> dict:
    """runs: eval_results dicts of one base-to-novel run per seed. Base / novel = the top-1 of the runs'
    'base' / 'novel' groups (summary top1_mean). -> {'base': {mean, std, per_run}, 'novel': {...},
    'harmonic_mean': HM of the two means, 'num_runs'}; std is the population std, as main.py's."""
    out = {}
    for group in ("base", "novel"):
        vals = []
        for i, r in enumerate(runs):
            name = names[i] if i < len(names) else f"run {i}"
            try:
                vals.append(float(r[key]["summary"][group]["top1_mean"]))
            except (KeyError, TypeError):
                raise ValueError(f"{name}: eval_results has no {key}.summary.{group} (not a base-to-novel run?)") \
                    from None
        out[group] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_run": vals}
    out["harmonic_mean"] = harmonic_mean(out["base"]["mean"], out["novel"]["mean"])
    out["num_runs"] = len(runs)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tcvideo.classification.aggregate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="workdirs (or eval_results.json files) of the seeds")
    p.add_argument("--key", default="fine_tuned", help="which evaluation of eval_results.json (e.g. wise_ft_w0.7)")
    args = p.parse_args(argv)
    try:
        s = base2novel_over_seeds([read_eval_results(r) for r in args.runs], args.key, args.runs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for g in ("base", "novel"):
        print(f"{g:<6}{s[g]['mean']:8.2f} +- {s[g]['std']:.2f}  ({', '.join(f'{v:.2f}' for v in s[g]['per_run'])})")
    print(f"HM    {s['harmonic_mean']:8.2f}  (harmonic mean of the {s['num_runs']} runs' means)")
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
