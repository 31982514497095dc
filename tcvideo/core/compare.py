"""Runs of one config side by side: ``config.compare`` = {label: overrides of the config}.

Each label is trained and evaluated (``train.train_and_evaluate``) in ``workdir/<label>`` with the
config's fields replaced by its overrides (``{}``: the config as it is), under the same schedule; the
final table puts their results in one row each, and ``workdir/curves.png`` draws their curves together.
TensorBoard on ``workdir`` shows the runs as separate, comparable runs.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import ml_collections

from tcvideo.core import config as core_config
from tcvideo.core import console


def run_configs(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """label -> the config of that run (``compare`` emptied, so that each run is a plain run)."""
    out = {}
    for label, overrides in config.compare.items():
        c = core_config.apply_overrides(config, overrides)
        with c.unlocked():
            c.compare = ml_collections.ConfigDict()
            c.name = f"{config.name}/{label}"
        out[str(label)] = c
    return out


def _numeric(res: dict) -> dict:
    return {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "count"}


def side_by_side(outs: dict[str, dict], seconds: dict[str, float]) -> list[str]:
    """Rows 'label | metric per target | best during training (step) | train+eval time' of final results."""
    first = next(iter(outs.values()))
    main = "fine_tuned" if "fine_tuned" in first else next(k for k, v in first.items() if isinstance(v, dict) and "results" in v)
    cols = []  # (target, metric)
    for target, res in first[main]["results"].items():
        cols += [(target, m) for m in _numeric(res)]
    heads = [f"{t}/{m}" if len(first[main]["results"]) > 1 else m for t, m in cols]
    n = first[main]["results"][cols[0][0]].get("count") if cols else None
    w = max(12, *(len(k) + 2 for k in outs))
    lines = [f"{'run':<{w}}" + "".join(f"{h:>10}" for h in heads) + f"{'best (step)':>16}{'time':>8}"]
    for label, out in outs.items():
        row = f"{label:<{w}}" + "".join(f"{out[main]['results'][t][m]:>10.2f}" for t, m in cols)
        best = out.get("best_during_training")
        best_text = f"{best['primary']:.2f} ({best['step']})" if best else "-"
        row += f"{best_text:>16}"
        row += f"{seconds[label]:>7.0f}s"
        lines.append(row)
    if n:
        lines.append(f"(held-out videos: {n} per run; best = in-training evaluation)")
    return lines


def train_and_compare(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train and evaluate every run of ``config.compare``; print the side-by-side table. -> {label: results}."""
    from tcvideo.core import train

    runs = run_configs(config)
    for c in runs.values():  # every run's config errors before any run computes
        train.Setup(c)
    os.makedirs(workdir, exist_ok=True)
    console.attach_workdir(workdir)
    outs, seconds = {}, {}
    for i, (label, c) in enumerate(runs.items()):
        console.say(f"== run {i + 1}/{len(runs)}: {label}")
        t = time.time()
        outs[label] = train.train_and_evaluate(c, os.path.join(workdir, label), summary=False)
        seconds[label] = time.time() - t
        if "preempted_at" in outs[label]:  # SIGTERM: the same command resumes this run, then the next
            console.say(f"stopped at step {outs[label]['preempted_at']} of {label}; rerun the command to resume")
            return outs
    console.attach_workdir(workdir)
    if not console.is_main_process():
        return outs
    with open(os.path.join(workdir, "eval_results.json"), "w") as f:
        json.dump(outs, f, indent=2, default=float)
    logs = {label: os.path.join(workdir, label, "train_log.jsonl") for label in runs}
    finals = {}  # label -> (last logged step, final primary metric): the last point of each eval curve
    for label, out in outs.items():
        primary, loss = out.get("fine_tuned", {}).get("primary"), console.read_train_log(logs[label])[0]
        if primary is not None and loss:
            finals[label] = (loss[-1][0], float(primary))
    try:
        console.plot_curves(logs, os.path.join(workdir, console.CURVES_FILE), final=finals)
    except Exception as e:  # noqa: BLE001 - a missing plot must not lose the results
        console.report_exception(e, "curves not drawn")
    console.say(f"== {config.name}: final evaluation, side by side")
    for line in side_by_side(outs, seconds):
        console.say(line)
    for line in console.workdir_summary(workdir, runs=list(runs)):
        console.say(line)
    return outs


def wants_comparison(config: Optional[ml_collections.ConfigDict]) -> bool:
    return config is not None and len(config.get("compare", {}) or {}) > 0
