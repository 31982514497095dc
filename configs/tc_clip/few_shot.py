"""Few-shot (K via --config.data.few_shot_k=2|4|8|16, split 1): 50 epochs, warmup 5, lr 2e-6, batch 64,
test 2x1; reports the best validation accuracy during training. Dataset: --config.data.data_dir=..."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
recipe = _common.recipe


def get_config():
    c = recipe("tc_clip_few_shot", "few_shot", epochs=50, warmup=5, lr=2e-6, min_lr=2e-8, batch=64, clips=2, crops=1)
    c.data.few_shot_k = 2
    c.data.test_split = "val"
    return c
