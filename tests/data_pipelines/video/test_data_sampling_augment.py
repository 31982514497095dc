"""Sampling indices against the spec's formulas; augmentation and mixup invariants."""
import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.video import augment, sampling


@pytest.mark.parametrize("n", [5, 8, 16, 17, 100, 301])
def test_train_and_test_formulas(n):
    t = 8
    rng = np.random.default_rng(n)
    for _ in range(20):
        u = rng.random(t)
        got = sampling.train_indices(n, t, u)
        if n >= t:
            seg = n // t
            want = [(i * seg + int(u[i] * seg)) % n for i in range(t)]  # i*(n//T) + randint(n//T)
            np.testing.assert_array_equal(got, want)
            assert all(i * seg <= g < (i + 1) * seg for i, g in enumerate(got))
        else:
            np.testing.assert_array_equal(got, np.round(np.arange(t) * n / t).astype(int) % n)
        np.testing.assert_array_equal(sampling.train_indices_tf(n, t, u).numpy(), got)
    want = [int(i * n / t + n / (2 * t)) % n for i in range(t)]
    np.testing.assert_array_equal(sampling.test_indices(n, t), want)
    np.testing.assert_array_equal(sampling.test_indices_tf(n, t).numpy(), want)


def test_multi_clip_even_and_official():
    n, t = 64, 8
    clips = sampling.multi_clip_indices(n, t, 4)
    for c in range(4):
        np.testing.assert_array_equal(clips[c], [int(i * n / t + (c + 0.5) * n / (t * 4)) for i in range(t)])
    np.testing.assert_array_equal(clips, sampling.multi_clip_indices(n, t, 4))  # deterministic
    assert len({tuple(c) for c in clips}) == 4
    np.testing.assert_array_equal(sampling.multi_clip_indices(n, t, 1)[0], sampling.test_indices(n, t))
    # Official (SampleFrames(multiview=C) outside test mode): all C clips are train-rule draws; 1 clip: centres.
    off = sampling.multi_clip_indices(n, t, 3, "official", np.random.default_rng(0))
    replay = np.random.default_rng(0)
    for c in range(3):
        np.testing.assert_array_equal(off[c], sampling.train_indices(n, t, replay.random(t)))
    assert len({tuple(c) for c in off}) == 3
    np.testing.assert_array_equal(sampling.multi_clip_indices(n, t, 1, "official", np.random.default_rng(0))[0],
                                  sampling.test_indices(n, t))
    # Indices past the end wrap.
    np.testing.assert_array_equal(sampling.test_indices(4, 2, clip=5, num_clips=2), [int((0 + 5.5 * 4 / 4)) % 4, int(2 + 5.5) % 4])


def _clip(t=8, h=48, w=64, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, (t, h, w, 3)), tf.uint8)


def test_multi_scale_crop_same_crop_for_all_frames():
    # Every frame is the same image shifted in colour: the crop must be identical across frames.
    base = np.random.default_rng(1).integers(0, 200, (48, 64, 3)).astype(np.uint8)
    frames = tf.constant(np.stack([base + k for k in range(6)]))
    for s in range(20):
        x = augment.multi_scale_crop(frames, tf.constant([s, 3], tf.int64), 32).numpy()
        assert x.shape == (6, 32, 32, 3)
        for k in range(1, 6):
            np.testing.assert_allclose(x[k] - k, x[0], atol=1e-3)


def test_multi_scale_crop_sizes_and_offsets():
    # A coordinate image reveals the crop window; check it is one of the official candidates.
    h, w = 48, 64
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    img = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)[None]
    sizes = [int(48 * s) for s in augment.MSC_SCALES]
    seen = set()
    for s in range(60):
        x = augment.multi_scale_crop(tf.constant(img), tf.constant([s, 0], tf.int64), 200)  # big: near-exact
        y0, x0 = int(round(float(x[0, 0, 0, 0]))), int(round(float(x[0, 0, 0, 1])))
        y1, x1 = int(round(float(x[0, -1, -1, 0]))), int(round(float(x[0, -1, -1, 1])))
        ch, cw = y1 - y0 + 1, x1 - x0 + 1
        assert ch in sizes and cw in sizes and abs(sizes.index(ch) - sizes.index(cw)) <= 1
        hs, ws = (h - ch) // 4, (w - cw) // 4
        assert (y0, x0) in {(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws)}
        seen.add((ch, cw, y0, x0))
    assert len(seen) > 10


def test_train_transform_shapes_ranges_and_flip_off():
    frames = _clip()
    lo = (0 - np.array(augment.IMAGENET_MEAN)) / np.array(augment.IMAGENET_STD)
    hi = (255 - np.array(augment.IMAGENET_MEAN)) / np.array(augment.IMAGENET_STD)
    for s in range(10):
        x = augment.train_transform(frames, tf.constant([s, 1], tf.int64), input_size=32).numpy()
        assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
        assert np.all(x >= lo - 1e-4) and np.all(x <= hi + 1e-4)
    # Flip disabled (SSv2): a left-bright image stays left-bright for every seed.
    img = np.zeros((4, 32, 32, 3), np.uint8)
    img[:, :, :8] = 255
    for s in range(30):
        x = augment.random_flip(tf.constant(img), tf.constant([s, 0], tf.int64), enabled=False).numpy()
        np.testing.assert_array_equal(x, img)
    flips = [bool(augment.random_flip(tf.constant(img), tf.constant([s, 0], tf.int64)).numpy()[0, 0, -1, 0])
             for s in range(200)]
    assert 70 < sum(flips) < 130


def test_color_jitter_probability_and_per_frame_factors():
    frames = tf.cast(_clip(t=6), tf.float32)
    applied, per_frame = 0, 0
    for s in range(200):
        x = augment.color_jitter(frames, tf.constant([s, 2], tf.int64)).numpy()
        assert x.min() >= 0 and x.max() <= 255
        if not np.allclose(x, frames.numpy()):
            applied += 1
            ratios = x.mean(axis=(1, 2, 3)) / frames.numpy().mean(axis=(1, 2, 3))
            per_frame += np.ptp(ratios) > 1e-3
    assert 140 < applied < 180  # p = 0.8
    assert per_frame == applied  # factors differ between frames of a clip
    gray = [np.allclose(augment.random_grayscale(frames, tf.constant([s, 4], tf.int64)).numpy()[..., 0],
                        augment.random_grayscale(frames, tf.constant([s, 4], tf.int64)).numpy()[..., 2]) for s in range(300)]
    assert 35 < sum(gray) < 85  # p = 0.2


def test_normalization_constants():
    x = tf.fill([1, 1, 1, 3], 255.0)
    np.testing.assert_allclose(augment.normalize(x, "imagenet").numpy()[0, 0, 0],
                               (255 - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375]), rtol=1e-5)
    np.testing.assert_allclose(augment.normalize(x, "clip").numpy()[0, 0, 0],
                               (1 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711]),
                               rtol=1e-5)


def test_test_transform_crops():
    frames = _clip(t=4, h=48, w=64)
    one = augment.test_transform(frames, input_size=32).numpy()
    assert one.shape == (1, 4, 32, 32, 3)
    three = augment.test_transform(frames, input_size=32, num_crops=3).numpy()
    assert three.shape == (3, 4, 32, 32, 3)
    # Short side to 32 = input size (48x64 -> 32x43): crops at 0, 5, 11 along the width.
    ref = augment.normalize(augment.resize_short_side(frames, 32)).numpy()
    assert ref.shape[1:3] == (32, 43)
    for k, off in enumerate((0, 5, 11)):
        np.testing.assert_allclose(three[k], ref[:, :, off:off + 32], atol=1e-5)
    # Portrait video: crops move along the height instead.
    tall = augment.test_transform(tf.transpose(frames, [0, 2, 1, 3]), input_size=32, num_crops=3).numpy()
    np.testing.assert_allclose(tall[2], np.transpose(ref[:, :, 11:43], [0, 2, 1, 3]), atol=1e-5)


def test_mixup_cutmix_soft_targets():
    b, c = 6, 5
    video = tf.constant(np.random.default_rng(0).normal(size=(b, 2, 16, 16, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3, 4, 0])
    kinds = set()
    for s in range(40):
        v, y = augment.mixup_cutmix(video, labels, tf.constant([s, 9], tf.int64), num_classes=c)
        y = y.numpy()
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
        assert y.min() >= 0.1 / c - 1e-6
        # The target weight of each example's own label equals the pixel share it keeps.
        v = v.numpy()
        same = np.isclose(v, video.numpy()).mean()
        # Cutmix: every pixel is the same pixel of some clip of the group (its own or its random partner's).
        from_some_clip = np.isclose(v[:, None], video.numpy()[None]).any(axis=1)
        kinds.add("cutmix" if 0 < same < 1 and np.all(from_some_clip) else "mixup")
    assert kinds == {"cutmix", "mixup"}
    _, y = augment.mixup_cutmix(video, labels, tf.constant([0, 0], tf.int64), num_classes=c, mixup_alpha=0, cutmix_alpha=0)
    np.testing.assert_allclose(y.numpy()[0], [0.92, 0.02, 0.02, 0.02, 0.02], atol=1e-6)


def test_mixup_groups_in_one_batch_draw_independently():
    """Groups of `mixup_group_size` clips (the per-device micro-batch): partners from the own group only,
    and each group its own lambda (the official draws per GPU batch of 4 with randperm partners)."""
    from data_pipelines.video.input_pipeline import default_data_config, make_train_iterator
    c = default_data_config()
    c.num_frames, c.input_size = 2, 8
    c.synthetic.num_classes, c.synthetic.videos_per_class, c.synthetic.test_videos_per_class = 8, 1, 1
    c.synthetic.num_frames, c.synthetic.resolution = 2, (8, 8)
    c.cutmix_alpha, c.label_smoothing, c.color_jitter_p, c.grayscale_p = 0.0, 0.0, 0.0, 0.0  # mixup only
    it = make_train_iterator(c, global_batch_size=8, seed=0, mixup_group_size=4)
    compared = 0
    for _ in range(6):
        b = next(it)
        y, lab = b["targets"], b["label"]  # 8 distinct labels per batch: one video per class
        lams = []
        for g in (0, 1):
            rows = range(4 * g, 4 * g + 4)
            own = set(lab[list(rows)].tolist())
            for i in rows:
                assert set(np.flatnonzero(y[i] > 1e-6).tolist()) <= own  # partner from the same group
            mixed = [y[i, lab[i]] for i in rows if y[i, lab[i]] < 1 - 1e-6]
            lams.append(mixed[0] if mixed else None)
            for m in mixed:  # one lambda per group
                np.testing.assert_allclose(m, mixed[0], rtol=1e-5)
        if None not in lams:
            assert abs(lams[0] - lams[1]) > 1e-4
            compared += 1
    assert compared >= 3


def test_hue_shift_is_hsv_rotation():
    """shift_hue against colorsys (an independent HSV implementation), one delta per frame."""
    import colorsys
    rng = np.random.default_rng(3)
    frames = rng.uniform(0, 255, size=(3, 4, 5, 3)).astype(np.float32)
    delta = np.array([-0.1, 0.03, 0.5], np.float32)
    got = augment.shift_hue(tf.constant(frames), tf.constant(delta)).numpy()
    want = np.empty_like(frames)
    for t in range(3):
        for idx in np.ndindex(4, 5):
            h, s, v = colorsys.rgb_to_hsv(*(frames[t][idx] / 255.0))
            want[t][idx] = np.array(colorsys.hsv_to_rgb((h + delta[t]) % 1.0, s, v)) * 255.0
    np.testing.assert_allclose(got, want, atol=0.05)
    assert np.abs(got - frames).max() > 10  # the shift does something
