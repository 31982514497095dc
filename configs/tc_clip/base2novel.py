"""Base-to-novel (K400 / HMDB-51 / UCF-101; SSv2: base2novel_ssv2.py) from the official files, seed N = 1, 2, 3:
    --config.data.train_list=.../hmdb_splits/fs_base_sN_train.txt --config.data.class_names_file=.../hmdb_51_base_labels.csv
    --config.eval.datasets.base.data.test_list=.../base_val.txt  (+ .class_names_file=..._base_labels.csv)
    --config.eval.datasets.novel.data.test_list=.../novel_val.txt (+ .class_names_file=..._novel_labels.csv)
(and each data_dir). 12 epochs, warmup 2, lr 3.33e-6, batch 64. Validation on base_val at 2x1 after every
epoch picks best/; the final table evaluates best/ on base and novel at 2x1 with their harmonic mean. The
paper's number is the harmonic mean of the 3 seeds' means: `python -m tcvideo.classification.aggregate
run_s1 run_s2 run_s3`."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")


def get_config():
    c = _common.recipe("tc_clip_base2novel", "base2novel", epochs=12, warmup=2, lr=3.33e-6, min_lr=3.33e-8,
                       batch=64, clips=2, crops=1)
    c.data.train_list = ""  # fs_base_s{1,2,3}_train.txt
    c.data.class_names_file = ""  # *_base_labels.csv
    c.eval.datasets.base = _common.official_target("base")  # base_val.txt + *_base_labels.csv
    c.eval.datasets.novel = _common.official_target("novel")  # novel_val.txt + *_novel_labels.csv
    c.eval.validation = _common.validation(target="base")
    c.train_eval_clips, c.train_eval_crops = 2, 1
    c.required_files = ("data.data_dir", "data.train_list", "data.class_names_file",
                        "eval.datasets.base.data.data_dir", "eval.datasets.base.data.test_list",
                        "eval.datasets.base.data.class_names_file", "eval.datasets.novel.data.data_dir",
                        "eval.datasets.novel.data.test_list", "eval.datasets.novel.data.class_names_file")
    return c
