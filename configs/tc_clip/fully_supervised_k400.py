"""Fully supervised K400: 30 epochs, warmup 5, lr 2.2e-5, batch 512. Validation on K400 val at 1x1 after every
epoch picks best/; the final table evaluates best/ on K400 val at 4 clips x 3 crops (top-1/top-5).
Files: --config.data.data_dir=<built K400>, --config.data.train_list=.../k400_splits/train.txt,
--config.data.test_list=.../k400_splits/val.txt, --config.data.class_names_file=.../kinetics_400_labels.csv."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")


def get_config():
    c = _common.recipe("tc_clip_fully_supervised_k400", "supervised", epochs=30, warmup=5, lr=2.2e-5,
                       min_lr=2.2e-7, batch=512, clips=4, crops=3)
    c.data.test_split = "val"
    c.data.train_list = ""
    c.data.test_list = ""
    c.data.class_names_file = ""
    c.eval.validation = _common.validation(target=c.data.name)
    c.required_files = ("data.data_dir", "data.train_list", "data.test_list", "data.class_names_file")
    return c
