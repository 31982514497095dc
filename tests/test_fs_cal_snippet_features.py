"""Per-snippet CLIP features (tcvideo/snippet_features.py) in the [T, D] .npy layout FS-CAL reads."""

import jax
import numpy as np

from data_pipelines.fs_cal.sources import feature_path, load_feature_file
from data_pipelines.video_io import decode_video, write_mp4
from tcvideo import snippet_features as sf
from tcvideo.models import clip as clip_lib


def test_snippet_centres():
    np.testing.assert_array_equal(sf.snippet_centres(10, 4), [1, 5, 8])  # snippets [0,4) [4,8) [8,10)
    np.testing.assert_array_equal(sf.snippet_centres(8, 4), [1, 5])
    np.testing.assert_array_equal(sf.snippet_centres(3, 16), [1])


def test_snippet_features_of_a_video(tmp_path):
    cfg = clip_lib.get_config("tiny")
    params = clip_lib.init_params(cfg, jax.random.PRNGKey(0))
    encode = sf.make_encoder(cfg, params)
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, size=(5, 1, 40, 48, 3), dtype=np.uint8), 4, axis=1).reshape(20, 40, 48, 3)
    path = str(tmp_path / "vid_a.mp4")
    write_mp4(path, frames, fps=8)
    dec = decode_video(path, short_side=None).frames
    feats = sf.snippet_features(dec, encode, resolution=cfg.image_resolution, frames_per_snippet=6, batch_size=2)
    assert feats.shape == (4, cfg.embed_dim) and feats.dtype == np.float32  # ceil(20 / 6) snippets
    want = np.asarray(encode(sf.preprocess(dec[[2, 8, 14, 18]], cfg.image_resolution)))
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats[0], feats[1])  # different frames, different features
    np.save(tmp_path / f"{sf.video_id(path)}.npy", feats)
    assert load_feature_file(feature_path(str(tmp_path), "vid_a")).shape == (4, cfg.embed_dim)
