"""VicTR fully supervised K400 (the paper's K400 row, reported with ViT-L/14: top-1 87.0): TC-CLIP's
supervised recipe (30 epochs, warmup 5, lr 2.2e-5 / 2.2e-7, batch 512, 16 frames, 224 px, test 4 clips x 3
crops, top-1/top-5) on ViT-L/14, the video head at 10 x lr (tcvideo's choice). The paper's own supervised
hyper-parameters are not public: every value here but the backbone is TC-CLIP's or tcvideo's.
Data: --config.data.data_dir=.../video_folder/k400/1.0.0; CLIP init: --config.init_clip=/path/to/ViT-L-14.pt
(ViT-B/16 instead: --config.model.clip=ViT-B/16 --config.init_clip=.../ViT-B-16.pt)."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
recipe = _common.recipe


def get_config():
    c = recipe("victr_fully_supervised_k400", "supervised", epochs=30, warmup=5, lr=2.2e-5, min_lr=2.2e-7,
               batch=512, clips=4, crops=3, head_lr_mult=10.0)
    c.model.clip = "ViT-L/14"
    c.data.test_split = "val"
    return c
