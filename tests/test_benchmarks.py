"""The model benchmark CLI runs end to end on a tiny CLIP and reports consistent measures."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_model_bench_tiny(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "model_bench.py"), "--clip", "tiny", "--frames", "4",
           "--batch", "2", "--variants", "vifi_clip,tc_clip", "--repeats", "2", "--iters", "1", "--matmul-n", "128", "--peer",
           "--override", "context_tokens=8", "--override", "tome_r=2", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    rows = {(r["variant"], r["batch"]): r for r in res["rows"]}
    assert set(rows) == {("vifi_clip", 2), ("tc_clip", 2)}
    peak = res["meta"]["peak_matmul_flops_per_s"]
    assert peak == max(res["meta"]["peak_matmul_flops_per_s_start_end"]) > 0
    for r in rows.values():
        assert r["inference_clips_per_s"] > 0 and r["train_clips_per_s"] > 0
        assert r["train_mfu"] == r["train_flops_per_s"] / peak
        # A training step (forward, backward, update) costs more than two forward passes of the vision tower.
        assert r["train_flops_per_step"] > 2 * r["vision_gflops_per_clip"] * 1e9 * r["batch"]
        assert r["inference_peak_bytes"] > 0 and r["train_peak_bytes"] > r["inference_peak_bytes"]
    # Context tokens add attention columns and MLP rows: TC-CLIP must count more FLOPs than ViFi-CLIP.
    assert rows[("tc_clip", 2)]["vision_gflops_per_clip"] > rows[("vifi_clip", 2)]["vision_gflops_per_clip"]
    peers = res["peer"]
    assert [p["images"] for p in peers] == [8]
    assert all(p["jax_images_per_s"] > 0 and p["torch_images_per_s"] > 0 for p in peers)
    assert "inference throughput ratio" in proc.stdout and "train throughput ratio" in proc.stdout
