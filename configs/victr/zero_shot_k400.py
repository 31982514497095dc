"""VicTR zero-shot: train on K400 with TC-CLIP's recipe (10 epochs, warmup 5, lr 8e-6 / 8e-8, batch 256),
test HMDB-51 / UCF-101 / K600 zero-shot splits 1-3 (2x1 views), mean +- std; the video head at 10 x lr (peak
8e-5, tcvideo's choice: the 10x that CLIP video methods commonly give new modules, ~9400 steps). No WiSE-FT
ensemble by default (TC-CLIP's recipe uses 0.7): set --config.wise_ft_weight=0.7 to evaluate it; with the
identity-initialised head the interpolation goes towards CLIP's zero-shot model, not a random head.
Data dirs: --config.data.data_dir=K400 and --config.eval.datasets.<target>.data.data_dir=...; CLIP init:
--config.init_clip=/path/to/ViT-B-16.pt."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
folder, recipe = _common.folder, _common.recipe


def get_config():
    c = recipe("victr_zero_shot_k400", "zero_shot", epochs=10, warmup=5, lr=8e-6, min_lr=8e-8, batch=256,
               clips=2, crops=1, head_lr_mult=10.0)
    for s in (1, 2, 3):
        c.eval.datasets[f"hmdb51_s{s}"] = folder("hmdb51")
        c.eval.datasets[f"ucf101_s{s}"] = folder("ucf101")
        c.eval.datasets[f"k600_s{s}"] = folder("k600")
    c.wise_ft_weight = -1.0
    return c
