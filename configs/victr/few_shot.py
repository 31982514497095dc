"""VicTR few-shot (K via --config.data.few_shot_k=2|4|8|16): TC-CLIP's few-shot recipe (50 epochs, warmup 5,
lr 2e-6, batch 64, test 2x1, best validation accuracy during training). Dataset: --config.data.data_dir=...
CLIP init: --config.init_clip=/path/to/ViT-B-16.pt.

The video head trains at 100 x lr (peak 2e-4, tcvideo's choice): the recipe is only ~50 (HMDB-51, K=2) to
~1250 (UCF-101, K=16) steps, and at 2e-6 an Adam step moves a weight by at most ~2e-6, so the head would
stay where it started (tcvideo/victr/README.md, "Recipes")."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
recipe = _common.recipe


def get_config():
    c = recipe("victr_few_shot", "few_shot", epochs=50, warmup=5, lr=2e-6, min_lr=2e-8, batch=64, clips=2, crops=1,
               head_lr_mult=100.0)
    c.data.few_shot_k = 2
    c.data.test_split = "val"
    return c
