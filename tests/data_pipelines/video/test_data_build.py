"""Builds from generated mp4s with bad files mixed in: exact counts and build report."""
import os

import numpy as np
import pytest

from data_pipelines.video import get_dataset
from data_pipelines.video.synthetic import class_list, generate, write_mp4_dataset
from data_pipelines.video.video_io import write_mp4

tfds = pytest.importorskip("tensorflow_datasets")
from data_pipelines.video.video_folder import VideoFolder, VideoFolderConfig, read_build_report  # noqa: E402

CLASSES = class_list(3)
BAD = {  # relative path -> expected reason code
    "bad/text.mp4": "open_failed",
    "bad/empty.mp4": "empty_file",
    "bad/truncated.mp4": "truncated",
    "bad/zero.avi": "zero_frames",
    "bad/still.png": "not_a_video",
    "bad/missing.mp4": "missing",
}


def _make_source(root):
    paths = write_mp4_dataset(str(root / "src"), CLASSES, splits={"train": 3, "test": 1},
                              num_frames=16, height=48, width=64)
    vd = paths["video_dir"]
    os.makedirs(os.path.join(vd, "bad"))
    with open(os.path.join(vd, "bad/text.mp4"), "w") as f:
        f.write("this is not a video\n")
    open(os.path.join(vd, "bad/empty.mp4"), "wb").close()
    good = os.path.join(vd, "bad/full.mp4")
    write_mp4(good, generate(CLASSES, "train", 1, 32, 48, 64)[0][0], faststart=True)
    data = open(good, "rb").read()
    with open(os.path.join(vd, "bad/truncated.mp4"), "wb") as f:
        f.write(data[: len(data) // 2])  # header intact, half the frames gone
    os.remove(good)
    import av
    out = av.open(os.path.join(vd, "bad/zero.avi"), "w")  # a video stream with no frames
    s = out.add_stream("mpeg4", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    out.start_encoding()
    out.close()
    from PIL import Image
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(os.path.join(vd, "bad/still.png"))
    with open(paths["train"], "a") as f:
        f.writelines(f"{p} {i % 3}\n" for i, p in enumerate(BAD))
    return paths


def _build(root, paths, name, **kw):
    cfg = VideoFolderConfig(name=name, video_dir=paths["video_dir"],
                            annotations={"train": paths["train"], "test": paths["test"]},
                            annotation_format="mmaction", class_names_file=paths["class_names"], short_side=32, **kw)
    b = VideoFolder(config=cfg, data_dir=str(root / "tfds"))
    return b


def _check(b):
    rep = read_build_report(b.data_dir)
    tr = rep["splits"]["train"]
    assert tr["listed"] == 9 + len(BAD)
    assert tr["num_examples"] == 9 and tr["num_skipped"] == len(BAD)
    assert {r["path"]: r["reason"].split(":")[0] for r in tr["skipped"]} == BAD
    assert rep["splits"]["test"] == {"listed": 3, "num_examples": 3, "num_skipped": 0, "skipped": []}
    assert b.info.splits["train"].num_examples == 9
    ds = get_dataset("video_folder", data_dir=b.data_dir)
    assert ds.class_names == CLASSES
    train = ds.split("train")
    np.testing.assert_array_equal(train.labels, np.arange(9) % 3)  # annotation order kept
    assert all(train.num_frames(i) == 16 for i in range(len(train)))
    rec = b.as_data_source("train")[0]
    assert rec["path"] == b"moving_left/train_00000.mp4" and abs(rec["fps"] - 25) < 1e-3
    assert abs(rec["duration"] - 16 / 25) < 0.05
    import tensorflow as tf
    img = tf.io.decode_jpeg(train.get_frames(0, [5])[0]).numpy()
    assert img.shape == (32, 43, 3)  # short side 32 at build time, aspect kept


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("vf")
    return root, _make_source(root)


def test_local_parallel_build_reports_bad_files(source):
    root, paths = source
    b = _build(root, paths, "local", num_workers=2)
    b.download_and_prepare()
    _check(b)
    # The built dataset feeds the training pipeline (JPEG decode path).
    from data_pipelines.video.input_pipeline import default_data_config, make_eval_iterator, make_train_iterator
    c = default_data_config()
    c.name, c.data_dir, c.num_frames, c.input_size = "video_folder", b.data_dir, 4, 24
    batch = next(make_train_iterator(c, global_batch_size=4, seed=0))
    assert batch["video"].shape == (4, 4, 24, 24, 3) and batch["targets"].shape == (4, 3)
    ev = list(make_eval_iterator(c, split="test", batch_size=2, num_clips=2))
    assert sum(int(x["mask"].sum()) for x in ev) == 3


def test_beam_build_direct_runner(source):
    beam = pytest.importorskip("apache_beam", reason="apache-beam not installed (pip install .[beam])")
    root, paths = source
    b = _build(root, paths, "beam")
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(beam_runner=beam.runners.DirectRunner()))
    _check(b)


def test_cli_build_then_train_and_evaluate(source, tmp_path, capsys):
    """The user path end to end: `python -m data_pipelines.video.build` on a folder with bad files mixed in,
    then the one trainer on the built dataset (train steps + final evaluation over every test video)."""
    import json

    from data_pipelines.video import build
    root, paths = source
    cfg = dict(name="cli", video_dir=paths["video_dir"], annotation_format="mmaction", short_side=32,
               annotations={"train": paths["train"], "test": paths["test"]}, class_names_file=paths["class_names"])
    assert build.main(["--data_dir", str(tmp_path / "tfds"), "--config", json.dumps({**cfg, "typo": 1})]) == 2
    assert "'typo'" in capsys.readouterr().err
    assert build.main(["--data_dir", str(tmp_path / "tfds"), "--config", json.dumps(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"train: 9 examples, {len(BAD)} skipped of {9 + len(BAD)} listed" in out
    folder = out.split("dataset: ")[1].split()[0]

    import train_fixtures as tf_
    from tcvideo.core import train
    c = tf_.tiny_config("vifi_clip", **{"data.name": "video_folder", "data.data_dir": folder, "total_steps": 3,
                                        "batch_size": 4, "eval.final": True, "eval.batch_size": 4,
                                        "async_checkpointing": False})
    res = train.train_and_evaluate(c, str(tmp_path / "work"))
    assert res["fine_tuned"]["results"]["video_folder"]["count"] == 3  # every test video, none twice
    assert res["train_step_compilations"] == 1
    with open(tmp_path / "work" / "train_log.jsonl") as f:
        losses = [json.loads(line)["train/loss"] for line in f]
    assert len(losses) == 3 and all(np.isfinite(losses))
    # Standalone evaluation of that run (`tcvideo eval --checkpoint WORKDIR`) reproduces its final eval.
    again = train.evaluate_workdir(c, str(tmp_path / "eval"), checkpoint=str(tmp_path / "work"))
    assert again["fine_tuned"]["results"] == res["fine_tuned"]["results"]
    assert again["params_source"] == "checkpoint"
