"""Streaming OV-OAD: frame-by-frame scores equal the batched offline evaluation; vocabulary swap without
rebuilding; raw frames through the CLIP frame encoder."""
import jax
import numpy as np

from ov_oad_fixture import CONTEXT, tiny_config, tiny_params
from tcvideo.ov_oad import stream as oad_stream

CLASSES = ["background", "jumping", "running", "swimming"]


def test_streaming_equals_offline_and_vocabulary_swaps():
    cfg, p = tiny_config(), tiny_params()
    feats = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (21, 32)))  # > window: the ring buffer wraps
    det = oad_stream.OnlineDetector(cfg, p, CLASSES, context_length=CONTEXT)
    leaves = jax.tree_util.tree_leaves(det.params)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)  # on the device once, not per push
    streamed = np.stack([det.push(f) for f in feats])
    voc = oad_stream.vocabulary(cfg, p, CLASSES, context_length=CONTEXT)
    offline = oad_stream.score_video(cfg, p, feats, voc, batch_size=8)
    assert streamed.shape == offline.shape == (21, 4)
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-6)  # batch 8: float rounding only
    # With batch 1 the offline scorer runs exactly the streaming computation: bit-identical scores.
    np.testing.assert_array_equal(streamed, oad_stream.score_video(cfg, p, feats, voc, batch_size=1))
    np.testing.assert_array_equal(det.window(), feats[-16:])  # time order, oldest first
    # Swap the vocabulary mid-stream: the buffer is kept, the new classes score the same window.
    det.set_vocabulary(["background", "swimming"])
    s = det.push(feats[0])
    win = np.concatenate([feats[-15:], feats[:1]])[None]
    want = oad_stream.score_windows(cfg, p, win, oad_stream.vocabulary(cfg, p, ["background", "swimming"],
                                                                      context_length=CONTEXT))[0]
    assert s.shape == (2,)
    np.testing.assert_allclose(s, want, rtol=1e-6)
    det.reset()
    assert det.count == 0 and not det.buffer.any()


def test_push_raw_frames_through_clip():
    from tcvideo.clip import model as clip_lib
    from tcvideo.clip.frame_encoder import FrameEncoder
    ccfg = clip_lib.CLIPConfig.from_dict({**clip_lib.PRESETS["tiny"].to_dict(), "vision_width": 32,
                                          "vision_heads": 2, "vision_layers": 1})
    cp = clip_lib.init_params(ccfg, jax.random.PRNGKey(1))
    enc = FrameEncoder(ccfg, cp)
    frames = np.asarray(jax.random.randint(jax.random.PRNGKey(2), (3, 40, 50, 3), 0, 256), np.uint8)
    f = enc(frames)
    assert f.shape == (3, 32) and np.all(np.isfinite(f))
    cfg, p = tiny_config(), tiny_params()
    det = oad_stream.OnlineDetector(cfg, p, CLASSES, context_length=CONTEXT, frame_encoder=enc)
    out = np.stack([det.push_frame(fr) for fr in frames])
    voc = oad_stream.vocabulary(cfg, p, CLASSES, context_length=CONTEXT)
    np.testing.assert_allclose(out, oad_stream.score_video(cfg, p, f, voc, batch_size=4), rtol=1e-5, atol=1e-6)
