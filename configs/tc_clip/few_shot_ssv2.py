"""Few-shot on SSv2 (few_shot.py with the SSv2 files): horizontal flip off, as the official code does for every
dataset named ssv2 ("left"/"right" in its labels). --config.data.train_list=.../ssv2_splits/train1_few_shot_K.txt
--config.data.test_list=.../ssv2_splits/validation.txt --config.data.class_names_file=.../labels/ssv2_labels.csv"""
from tcvideo.core.config import config_module

few_shot = config_module(__file__, "few_shot.py")


def get_config():
    c = few_shot.get_config()
    c.name = "tc_clip_few_shot_ssv2"
    c.data.flip = False
    return c
