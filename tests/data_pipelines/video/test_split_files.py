"""The official split-file formats (TC-CLIP / ViFi-CLIP datasets_splits/*.txt, labels/*.csv), written here in
small files of the same format: they select exactly the listed videos / classes, and a wrong file stops the
config check naming its field."""
import numpy as np
import pytest

from data_pipelines.video import get_dataset
from data_pipelines.video.input_pipeline import _split_view, dataset_info, default_data_config, make_eval_iterator
from tcvideo.classification.config import check_data
from tcvideo.core.config import ConfigError


def _cfg(**kw):
    c = default_data_config()
    c.num_frames, c.input_size = 4, 16
    c.synthetic.num_classes, c.synthetic.videos_per_class, c.synthetic.test_videos_per_class = 6, 4, 3
    c.synthetic.num_frames, c.synthetic.resolution = 4, (16, 16)
    for k, v in kw.items():
        c[k] = v
    return c


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _csv(path, names):  # labels/*.csv: header `id,name`
    return _write(path, ["id,name"] + [f"{i},{n}" for i, n in enumerate(names)])


def _paths(split):
    return get_dataset("synthetic", config=_cfg()).split(split).paths


def test_few_shot_list_selects_the_listed_videos_with_their_labels(tmp_path):
    """train1_few_shot_K.txt: `file.avi label` lines, names without the class folder (HMDB / UCF lists)."""
    paths, labels = _paths("train"), get_dataset("synthetic", config=_cfg()).split("train").labels
    pick = [21, 2, 9, 14]  # list order, not sorted
    names = ["growing", "moving left", "shrinking", "moving down", "moving up", "moving right"]
    # The class file's own ids: synthetic class c is named `names`' entry at position new[c].
    ds_names = get_dataset("synthetic", config=_cfg()).class_names
    new = {c: names.index(n) for c, n in enumerate(ds_names)}
    lst = _write(tmp_path / "train1_few_shot_2.txt",
                 [f"{paths[i].split('/')[-1]} {new[int(labels[i])]}" for i in pick])
    c = _cfg(train_list=lst, class_names_file=_csv(tmp_path / "hmdb_51_labels.csv", names))
    src, idx, lab, got_names = _split_view(c, "train", train=True)
    assert idx.tolist() == pick
    assert lab.tolist() == [new[int(labels[i])] for i in pick]
    assert got_names == names
    assert dataset_info(c)["num_examples"]["train"] == 4


def test_eval_list_with_other_folders_and_extensions_is_matched_by_stem(tmp_path):
    """ZS_splitS_K600_eval.txt names `train/<id>.mp4`; SSv2 lists `<id>.webm`: the folder and extension of
    the built split may differ."""
    paths = _paths("test")
    pick = [17, 0, 5]
    lst = _write(tmp_path / "ZS_split1_K600_eval.txt",
                 [f"train/{paths[i].split('/')[-1].replace('.avi', '.mp4')} {k}" for k, i in enumerate(pick)])
    c = _cfg(test_list=lst, class_names_file=_csv(tmp_path / "ZS_split1_K600.csv", ["a", "b", "c"]))
    labels = np.concatenate([b["label"][b["mask"]] for b in make_eval_iterator(c, split="test", batch_size=2)])
    assert labels.tolist() == [0, 1, 2]
    assert _split_view(c, "test", train=False)[1].tolist() == pick


def test_class_file_without_list_keeps_its_classes_relabelled(tmp_path):
    """*_base_labels.csv / *_novel_labels.csv: the examples of exactly those classes, ids of the file."""
    base = _csv(tmp_path / "hmdb_51_base_labels.csv", ["shrinking", "moving_left", "Moving Up"])
    c = _cfg(class_names_file=base)
    src, idx, lab, names = _split_view(c, "test", train=False)
    want = {5: 0, 0: 1, 2: 2}
    assert idx.tolist() == [i for i, l in enumerate(src.labels) if int(l) in want]
    assert lab.tolist() == [want[int(src.labels[i])] for i in idx]
    assert names == ["shrinking", "moving_left", "Moving Up"]


@pytest.mark.parametrize("case,field", [
    ("missing", "data.train_list"),
    ("bad_line", "data.train_list"),
    ("label_range", "data.train_list"),
    ("not_in_split", "data.train_list"),
    ("twice", "data.train_list"),
    ("csv_gap", "data.class_names_file"),
    ("csv_unknown_class", "data.class_names_file"),
])
def test_wrong_split_files_fail_naming_the_field(tmp_path, case, field):
    paths = _paths("train")
    names = _csv(tmp_path / "labels.csv", ["moving left", "moving right"])
    good = f"{paths[0].split('/')[-1]} 0"
    kw = {"train_list": _write(tmp_path / "list.txt", [good]), "class_names_file": names}
    if case == "missing":
        kw["train_list"] = str(tmp_path / "no_such_list.txt")
    elif case == "bad_line":
        kw["train_list"] = _write(tmp_path / "list.txt", [good, "just_a_name.avi"])
    elif case == "label_range":
        kw["train_list"] = _write(tmp_path / "list.txt", [good, f"{paths[1].split('/')[-1]} 2"])
    elif case == "not_in_split":
        kw["train_list"] = _write(tmp_path / "list.txt", [good, "v_NotThere_g01_c01.avi 1"])
    elif case == "twice":
        kw["train_list"] = _write(tmp_path / "list.txt", [good, good])
    elif case == "csv_gap":
        kw["class_names_file"] = _write(tmp_path / "labels.csv", ["id,name", "0,moving left", "2,moving up"])
    elif case == "csv_unknown_class":
        kw["class_names_file"] = _csv(tmp_path / "labels.csv", ["moving left", "juggling"])
        kw["train_list"] = ""
    with pytest.raises(ConfigError, match=rf"config\.{field}\b"):
        check_data("data", _cfg(**kw), train=True)


def test_good_files_pass_the_config_check(tmp_path):
    paths = _paths("train")
    lst = _write(tmp_path / "list.txt", [f"{paths[i].split('/')[-1]} {i % 2}" for i in (0, 4)])
    info = check_data("data", _cfg(train_list=lst, class_names_file=_csv(tmp_path / "l.csv", ["moving left", "moving right"])), train=True)
    assert info["num_examples"]["train"] == 2
