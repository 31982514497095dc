"""Base-to-novel: train on 16 shots of each base class (seed s1-s3 via --config.data.base_novel_seed=0..2),
12 epochs, warmup 2, lr 3.33e-6, batch 64, test 2x1 on base and novel classes; harmonic mean reported."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
recipe = _common.recipe
from tcvideo.classification.config import eval_target  # noqa: E402


def get_config():
    c = recipe("tc_clip_base2novel", "base2novel", epochs=12, warmup=2, lr=3.33e-6, min_lr=3.33e-8, batch=64,
               clips=2, crops=1)
    c.data.base_novel = "base"
    c.data.base_novel_shots = 16
    c.eval.datasets.base = eval_target("base", base_novel="base")
    c.eval.datasets.novel = eval_target("novel", base_novel="novel")
    return c
