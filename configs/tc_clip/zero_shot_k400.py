"""Zero-shot: train TC-CLIP on K400 (10 epochs, warmup 5, lr 8e-6 / 8e-8, batch 256); validation on K400 val
at 1x1 after every epoch picks best/; the final table evaluates best/ at 2x1 on HMDB-51 and UCF-101 splits
1-3 and the K600 zero-shot splits 1-3, each group as mean +- population std of its 3 splits (main.py's
avg_std); WiSE-FT w = 0.7 evaluated too. Files (official datasets_splits/ and labels/):
    --config.data.data_dir=<built K400> --config.data.train_list=k400_splits/train.txt
    --config.data.class_names_file=kinetics_400_labels.csv --config.eval.validation.data.test_list=k400_splits/val.txt
    --config.eval.datasets.hmdb51_sS.data.{data_dir, test_list=hmdb_splits/valS.txt, class_names_file=hmdb_51_labels.csv}
    --config.eval.datasets.ucf101_sS.data.{data_dir, test_list=ucf_splits/valS.txt, class_names_file=ucf_101_labels.csv}
    --config.eval.datasets.k600_sS.data.{data_dir, test_list=k600_splits/ZS_splitS_K600_eval.txt,
                                         class_names_file=ZS_splitS_K600.csv}"""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")


def get_config():
    c = _common.recipe("tc_clip_zero_shot_k400", "zero_shot", epochs=10, warmup=5, lr=8e-6, min_lr=8e-8,
                       batch=256, clips=2, crops=1)
    c.data.train_list = ""
    c.data.class_names_file = ""
    c.data.test_split = "val"  # K400 val: the validation split (every test target has its own data)
    c.eval.validation = _common.validation(test_list="")
    req = ["data.data_dir", "data.train_list", "data.class_names_file", "eval.validation.data.test_list"]
    for s in (1, 2, 3):
        for group in ("hmdb51", "ucf101", "k600"):
            c.eval.datasets[f"{group}_s{s}"] = _common.official_target(group)
            req += [f"eval.datasets.{group}_s{s}.data.{f}" for f in ("data_dir", "test_list", "class_names_file")]
    c.required_files = tuple(req)
    c.wise_ft_weight = 0.7
    return c
