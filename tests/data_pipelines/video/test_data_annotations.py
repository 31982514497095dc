"""Every annotation and class-name format, including error messages naming file:line."""
import json
import os

import pytest

from data_pipelines.video.annotations import AnnotationError, Entry, load_class_names, parse_annotations, prettify_class_name


def _w(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_mmaction_list_with_spaces_and_errors(tmp_path):
    p = _w(tmp_path / "a.txt", "a/v1.mp4 0\n\n# comment\nb/my video.mp4 12\n")
    assert parse_annotations(p, "mmaction") == [Entry("a/v1.mp4", 0, 1), Entry("b/my video.mp4", 12, 4)]
    bad = _w(tmp_path / "b.txt", "a/v1.mp4 0\na/v2.mp4 x\n")
    with pytest.raises(AnnotationError, match=r"b\.txt:2"):
        parse_annotations(bad, "mmaction")


def test_csv_ids_names_and_header(tmp_path):
    names = _w(tmp_path / "classes.csv", "id,name\n0,apply eye makeup\n1,archery\n")
    assert load_class_names(names) == ["apply eye makeup", "archery"]
    p = _w(tmp_path / "a.csv", "path,label\nx/1.mp4,1\nx/2.mp4,apply eye makeup\n")
    got = parse_annotations(p, "csv", class_names=load_class_names(names))
    assert got == [Entry("x/1.mp4", 1, 2), Entry("x/2.mp4", 0, 3)]
    with pytest.raises(AnnotationError, match=r"a\.csv:3.*no class-name file"):
        parse_annotations(p, "csv")


def test_kinetics_csv_finds_files_and_sorted_label_ids(tmp_path):
    vd = tmp_path / "videos"
    for rel in ["abseiling/abc_000010_000020.mp4", "zumba/xyz_000003_000013.mkv"]:
        _w(vd / rel, "")
    p = _w(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\n"
           "zumba,xyz,3,13,train\nabseiling,abc,10,20,train\nabseiling,gone,0,10,train\n")
    got = parse_annotations(p, "kinetics", video_dir=str(vd))
    assert got == [Entry("zumba/xyz_000003_000013.mkv", 1, 2), Entry("abseiling/abc_000010_000020.mp4", 0, 3),
                   Entry("abseiling/gone_000000_000010.mp4", 0, 4)]  # absent: nominal path -> reported missing
    # Column order as in the issue text, with a class-name file.
    p2 = _w(tmp_path / "t2.csv", "youtube_id,time_start,time_end,split,label\nabc,10,20,val,abseiling\n")
    assert parse_annotations(p2, "auto", class_names=["zumba", "abseiling"], video_dir=str(vd)) == [
        Entry("abseiling/abc_000010_000020.mp4", 1, 2)]


def test_ucf101_official_split_files(tmp_path):
    ci = _w(tmp_path / "classInd.txt", "1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n")
    names = load_class_names(ci)
    assert names == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    tr = _w(tmp_path / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 3\n")
    te = _w(tmp_path / "testlist01.txt", "ApplyLipstick/v_ApplyLipstick_g01_c01.avi\n")
    assert [e.label for e in parse_annotations(tr, "ucf101")] == [0, 2]
    assert parse_annotations(te, "ucf101", class_names=names) == [Entry("ApplyLipstick/v_ApplyLipstick_g01_c01.avi", 1, 1)]
    assert prettify_class_name("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert prettify_class_name("brush_hair") == "brush hair"


@pytest.mark.parametrize("split_id", [1, 2, 3])
def test_hmdb51_split_files(tmp_path, split_id):
    d = tmp_path / "testTrainMulti_7030_splits"
    for cls in ["brush_hair", "cartwheel"]:
        for k in (1, 2, 3):
            flag = lambda j: str((j + k) % 3)  # noqa: E731 - a different assignment per split
            _w(d / f"{cls}_test_split{k}.txt", "".join(f"{cls}_{j}.avi {flag(j)}\n" for j in range(6)))
    train = parse_annotations(str(d), "hmdb51", split_id=split_id, subset="train")
    test = parse_annotations(str(d), "hmdb51", split_id=split_id, subset="test")
    want = lambda flag: [(f"{c}/{c}_{j}.avi", ci) for ci, c in enumerate(["brush_hair", "cartwheel"])  # noqa: E731
                         for j in range(6) if (j + split_id) % 3 == flag]
    assert [(e.path, e.label) for e in train] == want(1)
    assert [(e.path, e.label) for e in test] == want(2)
    with pytest.raises(ValueError):
        parse_annotations(str(d), "hmdb51", split_id=4)


def test_ssv2_json_and_labels(tmp_path):
    labels = _w(tmp_path / "labels.json", json.dumps({"Approaching something with your camera": "0",
                                                     "Moving something from left to right": "1"}))
    names = load_class_names(labels)
    assert names == ["Approaching something with your camera", "Moving something from left to right"]
    ann = _w(tmp_path / "train.json", json.dumps([
        {"id": "78687", "label": "moving pen from left to right", "template": "Moving [something] from left to right",
         "placeholders": ["pen"]},
        {"id": "42326", "label": "approaching a cup with your camera", "template": "Approaching [something] with your camera",
         "placeholders": ["a cup"]}]))
    assert parse_annotations(ann, "auto", class_names=names) == [Entry("78687.webm", 1, 1), Entry("42326.webm", 0, 2)]
    bad = _w(tmp_path / "bad.json", json.dumps([{"id": "1", "template": "Unknown [something]"}]))
    with pytest.raises(AnnotationError, match=r"bad\.json:1"):
        parse_annotations(bad, "ssv2", class_names=names)


def test_class_name_files(tmp_path):
    assert load_class_names(_w(tmp_path / "d.json", json.dumps({"1": "b: desc", "0": "a: desc"}))) == ["a: desc", "b: desc"]
    assert load_class_names(_w(tmp_path / "p.txt", "archery\nbowling\n")) == ["archery", "bowling"]
    assert load_class_names(_w(tmp_path / "z.txt", "0 archery\n1 bowling\n")) == ["archery", "bowling"]
    with pytest.raises(AnnotationError, match="0..N-1"):
        load_class_names(_w(tmp_path / "gap.csv", "id,name\n0,a\n2,c\n"))
    with pytest.raises(AnnotationError, match=r"row\.csv:2"):
        load_class_names(_w(tmp_path / "row.csv", "id,name\nx,a\n"))
