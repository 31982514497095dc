"""OAD data: the frame-label rule, synthetic videos, training windows and captions (both styles, exact resume),
annotation parsers (THUMOS'14, TVSeries, ActivityNet, captions), feature files and `tcvideo extract-features`."""
import json
import pickle

import numpy as np
import pytest

from data_pipelines.video.annotations import AnnotationError
from data_pipelines.temporal import annotations as ann, features as feat, synthetic as syn
from data_pipelines.temporal.video import OADVideo, Segment, frame_labels, frame_range
from data_pipelines.temporal.windows import WindowSampler, sliding_windows


def _tok(texts):
    return np.asarray([[hash(t) % 1000, i] for i, t in enumerate(texts)], np.int32)  # stand-in: one row per text


def test_frame_rule_and_labels():
    assert list(frame_range(1.0, 2.0, 100)) == list(range(3, 8))  # int(4) - 1 .. ceil(8) - 1
    assert list(frame_range(0.1, 0.6, 100)) == [0, 1, 2]  # int(0.4) - 1 = -1 clipped to 0; ceil(2.4) = 3
    v = OADVideo("v", np.zeros((12, 4)), segments=[Segment(0.5, 1.0, "a"), Segment(2.0, 2.5, None, ambiguous=True)])
    labels, amb = frame_labels(v, ["background", "a"])
    np.testing.assert_array_equal(np.nonzero(labels[:, 1])[0], [1, 2, 3])
    np.testing.assert_array_equal(labels[:, 0], 1 - labels[:, 1])
    np.testing.assert_array_equal(np.nonzero(amb)[0], [7, 8, 9])
    with pytest.raises(ValueError, match="not in the class list"):
        frame_labels(v, ["background", "b"])


def test_synthetic_videos_follow_their_labels():
    v = syn.make_video(0, classes=("jumping", "running"), num_frames=80, dim=16, noise=0.1)
    labels, _ = frame_labels(v, ["background", "jumping", "running"])
    protos = syn.prototypes(2, 16, 0)
    nearest = np.argmax(v.features @ protos.T, axis=1)
    assert (nearest == labels.argmax(1)).mean() > 0.95
    assert labels[:, 1:].sum() > 0 and labels[:, 0].sum() > 0
    np.testing.assert_array_equal(v.features, syn.make_video(0, classes=("jumping", "running"), num_frames=80,
                                                             dim=16, noise=0.1).features)


def test_windows_captions_and_exact_resume():
    segs = [Segment(1.0 / 4, 6 / 4, "jumping", "someone jumps"), Segment(9 / 4, 12 / 4, "running", "a run")]
    v = OADVideo("v", np.arange(20 * 2, dtype=np.float32).reshape(20, 2), segments=segs)
    s = WindowSampler([v], window=8, tokenize=_tok, mode="class_tags", num_extra=2, exclude_last=2)
    assert len(s) == 20 - 8 - 2 + 1
    cap, last, mask = s.window_texts(0, np.random.default_rng(0))  # frames 0..7: jumping 0..5
    assert s.texts[cap[0]] == "a video of a person jumping" and s.texts[last] == "a video of a person background"
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 1, 0, 0])
    cap, last, mask = s.window_texts(4, np.random.default_rng(0))  # frames 4..11: jumping 4,5; running 8..11
    assert s.texts[cap[0]] == "a video of a person running" and s.texts[last] == "a video of a person running"
    assert {s.texts[c] for c in cap[1:]} <= {"a video of a person running", "a video of a person jumping"}
    c2 = WindowSampler([v], window=8, tokenize=_tok, mode="captions", exclude_last=2)
    cap, last, _ = c2.window_texts(4, np.random.default_rng(0))
    assert c2.texts[cap[0]] == "a run" and c2.texts[last] == "a run"
    bg = OADVideo("b", np.zeros((12, 2), np.float32), segments=[])
    s3 = WindowSampler([bg], window=8, tokenize=_tok, exclude_last=0)
    cap, last, mask = s3.window_texts(0, np.random.default_rng(0))
    assert all(s3.texts[c] == "a video of a person background" for c in cap) and not mask.any()
    b = s.batch([0, 4], np.random.default_rng(0))
    assert b["features"].shape == (2, 8, 2) and b["caption_ids"].shape == (2, 3, 2) and b["current_ids"].shape == (2, 2)
    full = s.iterator(global_batch_size=4, seed=3, start_step=0)
    steps = [next(full) for _ in range(6)]
    resumed = s.iterator(global_batch_size=4, seed=3, start_step=4)
    for want in steps[4:]:
        got = next(resumed)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    halves = [next(s.iterator(global_batch_size=4, seed=3, start_step=2, process_index=i, process_count=2))
              for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([h["features"] for h in halves]), steps[2]["features"])
    w = sliding_windows(v.features, 8)
    np.testing.assert_array_equal(w[3, -4:], v.features[:4])
    np.testing.assert_array_equal(w[3, :4], 0)


def test_annotation_parsers(tmp_path):
    d = tmp_path / "thumos"
    d.mkdir()
    (d / "HighJump_test.txt").write_text("video_test_0001 1.5 3.0\nvideo_test_0002 0.0 2.0\n")
    (d / "Ambiguous_test.txt").write_text("video_test_0001 4.0 5.0\n")
    t = ann.load_segments(str(d), "thumos14", class_names=["background", "HighJump"])
    assert sorted(t["video_test_0001"], key=lambda s: s.start) == [Segment(1.5, 3.0, "HighJump"),
                                                                   Segment(4.0, 5.0, None, ambiguous=True)]
    assert t["video_test_0002"] == [Segment(0.0, 2.0, "HighJump")]
    (d / "HighJump_test.txt").write_text("video_test_0001 1.5\n")
    with pytest.raises(AnnotationError, match="HighJump_test.txt:1"):
        ann.load_segments(str(d), "thumos14")
    tv = tmp_path / "tv.txt"
    tv.write_text("24_ep1\tPick something up\t10.0\t12.5\n24_ep1,Drink,1,2\n")
    out = ann.load_segments(str(tv), "tvseries")
    assert out["24_ep1"] == [Segment(10.0, 12.5, "Pick something up"), Segment(1.0, 2.0, "Drink")]
    with pytest.raises(AnnotationError, match="not in the class list"):
        ann.load_segments(str(tv), "tvseries", class_names=["background", "Drink"])
    an = tmp_path / "anet.json"
    an.write_text(json.dumps({"database": {
        "abc": {"subset": "training", "duration": 10.0, "annotations": [{"segment": [1.0, 4.0], "label": "Surfing"}]},
        "def": {"subset": "validation", "annotations": []}}}))
    assert ann.load_segments(str(an), "activitynet", subset="training") == {"abc": [Segment(1.0, 4.0, "Surfing")]}
    cap = tmp_path / "caps.txt"
    cap.write_text("vid1 0.0 2.5 a man opens the door\nvid1 3 4 he sits\n")
    assert ann.load_segments(str(cap), "captions")["vid1"][0] == Segment(0.0, 2.5, None, "a man opens the door")
    capj = tmp_path / "caps.json"
    capj.write_text(json.dumps({"vid1": {"0": [0, 1, "x"]}, "vid2": [[2, 3, "y"]]}))
    assert ann.load_segments(str(capj), "captions")["vid2"] == [Segment(2.0, 3.0, None, "y")]
    cap.write_text("vid1 2.0 1.0 backwards\n")
    with pytest.raises(AnnotationError, match="caps.txt:1"):
        ann.load_segments(str(cap), "captions")


def test_released_feature_files(tmp_path):
    d = tmp_path / "feats"
    d.mkdir()
    rgb = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float16)
    with open(d / "v_abc.pkl", "wb") as f:
        pickle.dump({"rgb": rgb, "captions": {"0": [0.0, 1.0, "hello"]}, "fps": 4, "vlen_src": 2.5}, f)
    np.save(d / "other.npy", rgb)
    vids = feat.load_videos(str(d), {"abc": [Segment(0.5, 1.0, "Surfing")]}, feature_dim=8)
    assert [v.name for v in vids] == ["v_abc"] and vids[0].segments == [Segment(0.5, 1.0, "Surfing")]
    np.testing.assert_array_equal(vids[0].features, rgb)
    own = feat.load_videos(str(d), None, feature_dim=8)
    assert {v.name for v in own} == {"v_abc", "other"}
    assert [v for v in own if v.name == "v_abc"][0].segments == [Segment(0.0, 1.0, None, "hello")]
    with pytest.raises(ValueError, match="model expects 16"):
        feat.load_videos(str(d), None, feature_dim=16)


def test_one_feature_file_reader(tmp_path):
    """read_feature_file serves OV-OAD (captions, fps) and FS-CAL (memory-mapped .npy, 'features' .npz)."""
    rgb = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "a.npy", rgb)
    mapped, loaded = (feat.read_feature_file(str(tmp_path / "a.npy"), mmap=m)["rgb"] for m in (True, False))
    np.testing.assert_array_equal(mapped, rgb)
    np.testing.assert_array_equal(loaded, rgb)
    assert isinstance(mapped.base, np.memmap) and not mapped.flags.writeable  # a view of the file, not a copy
    assert loaded.flags.writeable and not isinstance(loaded.base, np.memmap)
    np.savez(tmp_path / "v_b.npz", features=rgb, fps=np.float32(2.0))
    d = feat.read_feature_file(feat.find_feature_file(str(tmp_path), "b"))  # ActivityNet's v_ twin
    np.testing.assert_array_equal(d["rgb"], rgb)
    assert d["fps"] == 2.0 and d["captions"] == [] and d["duration"] is None
    np.savez(tmp_path / "c.npz", rgb=rgb, captions=np.array({"0": [0.5, 1.0, "hi"]}, dtype=object))
    assert feat.read_feature_file(str(tmp_path / "c.npz"))["captions"] == [Segment(0.5, 1.0, None, "hi")]
    assert feat.find_feature_file(str(tmp_path), "v_a").endswith("a.npy")
    assert feat.find_feature_file(str(tmp_path), "zzz") is None
    np.savez(tmp_path / "two.npz", x=rgb, y=rgb)
    with pytest.raises(ValueError, match=r"two.npz: no 'rgb' or 'features' array among \['x', 'y'\]"):
        feat.read_feature_file(str(tmp_path / "two.npz"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 2), np.float32))
    with pytest.raises(ValueError, match=r"empty.npy: features must be \[T, D\] with T >= 1"):
        feat.read_feature_file(str(tmp_path / "empty.npy"))


def test_extract_features_cli(tmp_path):
    from data_pipelines.video.video_io import write_mp4
    from tcvideo import cli
    vids = tmp_path / "videos"
    vids.mkdir()
    rng = np.random.default_rng(0)
    write_mp4(str(vids / "a.mp4"), rng.integers(0, 255, (25, 32, 48, 3), dtype=np.uint8), fps=10)  # 2.5 s
    out = tmp_path / "out"
    assert cli.main(["extract-features", "--clip=random:tiny", f"--videos={vids}", f"--out={out}", "--batch=4"]) == 0
    got = feat.load_videos(str(out), None)
    assert len(got) == 1 and got[0].name == "a"
    v = got[0]
    assert v.features.dtype == np.float16 and v.features.shape == (10, 64)  # 2.5 s x 4 fps, tiny CLIP width
    assert v.fps == 4.0 and abs(v.duration - 2.5) < 0.2
    # Same numbers as encoding the decoded centre frames directly.
    import jax
    from data_pipelines.video.video_io import decode_video
    from tcvideo.clip import model as clip_lib
    from tcvideo.clip.extract import sample_frames
    from tcvideo.clip.frame_encoder import FrameEncoder
    dv = decode_video(str(vids / "a.mp4"), short_side=None)
    frames = sample_frames(dv.frames, dv.source_fps, dv.duration)
    enc = FrameEncoder(clip_lib.PRESETS["tiny"], clip_lib.init_params(clip_lib.PRESETS["tiny"], jax.random.PRNGKey(0)))
    np.testing.assert_allclose(v.features.astype(np.float32), enc(frames), rtol=1e-2, atol=1e-2)
    assert cli.main(["extract-features", "--clip=random:tiny", f"--videos={tmp_path / 'nope'}", f"--out={out}"]) == 2
    # --format=npy: the same features as one memory-mappable [T, D] file per video (FS-CAL's layout)
    npy = tmp_path / "npy"
    assert cli.main(["extract-features", "--clip=random:tiny", f"--videos={vids}", f"--out={npy}", "--batch=4",
                     "--format=npy"]) == 0
    np.testing.assert_array_equal(feat.read_feature_file(feat.find_feature_file(str(npy), "a"), mmap=True)["rgb"],
                                  v.features)
