"""Clip augmentations (TF ops) of the TC-CLIP recipe, and mixup / cutmix soft targets.

All randomness is stateless (`tf.random.stateless_*` with an explicit [2] int seed): the
same seed gives the same clip whatever the thread, the host or the resume point.
Pixel values stay on the 0-255 scale until `normalize`, whose constants are 0-255 ones.
"""
from __future__ import annotations

import tensorflow as tf

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)  # OpenAI CLIP's constants x 255
CLIP_STD = (68.5005327, 66.6321579, 70.3231630)
NORMALIZATION = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}

MSC_SCALES = (1.0, 0.875, 0.75, 0.66)
_LUMA = (0.299, 0.587, 0.114)


def _sub_seeds(seed, num: int):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num))


def multi_scale_crop(frames, seed, input_size: int, scales=MSC_SCALES, max_wh_scale_gap: int = 1):
    """MMAction2 MultiScaleCrop (random_crop=False, 5 fixed offsets) + resize.

    frames: [T, H, W, 3]; one crop for the whole clip. Crop width and height are drawn
    independently from int(min(H, W) * scale) with scale indices at most
    `max_wh_scale_gap` apart; the offset is one of the 4 corners or the centre on a
    grid of (size - crop) // 4 steps. Returns float32 [T, input_size, input_size, 3].
    """
    s_size, s_off = _sub_seeds(seed, 2)
    pairs = [(i, j) for i in range(len(scales)) for j in range(len(scales)) if abs(i - j) <= max_wh_scale_gap]
    shape = tf.shape(frames)
    h, w = shape[1], shape[2]
    base = tf.cast(tf.minimum(h, w), tf.float32)
    sizes = tf.cast(base * tf.constant(scales, tf.float32), tf.int32)  # int() truncation
    k = tf.random.stateless_uniform([], s_size, 0, len(pairs), dtype=tf.int32)
    pair = tf.gather(tf.constant(pairs, tf.int32), k)
    crop_h, crop_w = tf.gather(sizes, pair[0]), tf.gather(sizes, pair[1])
    h_step, w_step = (h - crop_h) // 4, (w - crop_w) // 4
    offsets = tf.stack([tf.stack([0, 0]), tf.stack([0, 4 * w_step]), tf.stack([4 * h_step, 0]),
                        tf.stack([4 * h_step, 4 * w_step]), tf.stack([2 * h_step, 2 * w_step])])
    off = tf.gather(offsets, tf.random.stateless_uniform([], s_off, 0, 5, dtype=tf.int32))
    crop = tf.slice(frames, tf.stack([0, off[0], off[1], 0]), tf.stack([-1, crop_h, crop_w, 3]))
    return tf.image.resize(tf.cast(crop, tf.float32), [input_size, input_size], method="bilinear")


def random_flip(frames, seed, enabled: bool = True, p: float = 0.5):
    """Horizontal flip of the whole clip with probability p (never when disabled, e.g. SSv2,
    whose labels such as "left to right" change under a flip)."""
    if not enabled:
        return frames
    do = tf.random.stateless_uniform([], seed) < p
    return tf.cond(do, lambda: tf.reverse(frames, axis=[2]), lambda: frames)


def _gray(x):
    return tf.reduce_sum(x * tf.constant(_LUMA, x.dtype), axis=-1, keepdims=True)


def color_jitter(frames, seed, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p: float = 0.8):
    """Colour jitter applied to a clip with probability p, factors re-drawn per frame.

    frames: float [T, H, W, 3] on 0-255. Order brightness, contrast, saturation, hue
    (torchvision draws a random order; a fixed one keeps the op vectorised). Hue is
    torchvision's: an HSV hue shift by h in [-hue, hue] of a full turn. Results are clamped
    to [0, 255] after every step like torchvision.
    """
    s_apply, s_b, s_c, s_s, s_h = _sub_seeds(seed, 5)
    t = tf.shape(frames)[0]

    def factors(s, amount, lo_hi=None):
        lo, hi = lo_hi if lo_hi else (max(0.0, 1 - amount), 1 + amount)
        return tf.random.stateless_uniform([t, 1, 1, 1], s, lo, hi)

    def jitter():
        x = tf.clip_by_value(frames * factors(s_b, brightness), 0.0, 255.0)
        mean = tf.reduce_mean(_gray(x), axis=[1, 2, 3], keepdims=True)
        x = tf.clip_by_value((x - mean) * factors(s_c, contrast) + mean, 0.0, 255.0)
        g = _gray(x)
        x = tf.clip_by_value((x - g) * factors(s_s, saturation) + g, 0.0, 255.0)
        return shift_hue(x, factors(s_h, hue, (-hue, hue))[:, 0, 0, 0])

    do = tf.random.stateless_uniform([], s_apply) < p
    return tf.cond(do, jitter, lambda: frames)


def shift_hue(frames, delta):
    """HSV hue shift per frame (torchvision's adjust_hue): frames float [T, H, W, 3] on 0-255,
    delta [T] in turns (hue' = (hue + delta) mod 1). Returns float [T, H, W, 3] on 0-255."""
    hsv = tf.image.rgb_to_hsv(frames / 255.0)
    h = tf.math.floormod(hsv[..., :1] + delta[:, None, None, None], 1.0)
    rgb = tf.image.hsv_to_rgb(tf.concat([h, hsv[..., 1:]], axis=-1))
    return tf.clip_by_value(rgb * 255.0, 0.0, 255.0)


def random_grayscale(frames, seed, p: float = 0.2):
    """Whole clip to grayscale (3 equal channels) with probability p."""
    do = tf.random.stateless_uniform([], seed) < p
    return tf.cond(do, lambda: tf.tile(_gray(frames), [1, 1, 1, 3]), lambda: frames)


def normalize(frames, normalization: str | tuple = "imagenet"):
    """(x - mean) / std on 0-255 RGB; `normalization` is a name or a (mean, std) pair."""
    mean, std = NORMALIZATION[normalization] if isinstance(normalization, str) else normalization
    return (tf.cast(frames, tf.float32) - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def train_transform(frames, seed, *, input_size: int, flip: bool = True, color_jitter_p: float = 0.8,
                    grayscale_p: float = 0.2, normalization="imagenet", scales=MSC_SCALES):
    """uint8 [T, H, W, 3] -> float32 [T, input_size, input_size, 3], normalised."""
    s_crop, s_flip, s_jit, s_gray = _sub_seeds(seed, 4)
    x = multi_scale_crop(frames, s_crop, input_size, scales)
    x = random_flip(x, s_flip, flip)
    if color_jitter_p > 0:
        x = color_jitter(x, s_jit, p=color_jitter_p)
    if grayscale_p > 0:
        x = random_grayscale(x, s_gray, grayscale_p)
    return normalize(x, normalization)


def resize_short_side(frames, short_side: int):
    shape = tf.shape(frames)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    scale = short_side / tf.minimum(h, w)
    new_hw = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    return tf.image.resize(tf.cast(frames, tf.float32), new_hw, method="bilinear")


def test_transform(frames, *, input_size: int, num_crops: int = 1, short_side: int | None = None,
                   normalization="imagenet"):
    """uint8 [T, H, W, 3] -> float32 [num_crops, T, S, S, 3].

    1 crop: resize short side to `short_side` (default input_size * 256 / 224), centre
    crop. 3 crops: resize short side to input_size, then crops at the start, centre and
    end of the long side.
    """
    if num_crops == 1:
        x = resize_short_side(frames, short_side or int(round(input_size * 256 / 224)))
        shape = tf.shape(x)
        oy, ox = (shape[1] - input_size) // 2, (shape[2] - input_size) // 2
        crops = [x[:, oy:oy + input_size, ox:ox + input_size]]
    elif num_crops == 3:
        x = resize_short_side(frames, input_size)
        shape = tf.shape(x)
        h, w = shape[1], shape[2]
        long_h = h > w
        extent = tf.maximum(h, w) - input_size
        crops = []
        for start in (0, extent // 2, extent):
            oy = tf.where(long_h, start, 0)
            ox = tf.where(long_h, 0, start)
            crops.append(x[:, oy:oy + input_size, ox:ox + input_size])
    else:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    crops = [tf.ensure_shape(c, [None, input_size, input_size, 3]) for c in crops]
    return normalize(tf.stack(crops), normalization)


# ----------------------------------------------------------------------------- mixup / cutmix

def smooth_one_hot(labels, num_classes: int, smoothing: float):
    off = smoothing / num_classes
    return tf.one_hot(labels, num_classes, on_value=1.0 - smoothing + off, off_value=off, dtype=tf.float32)


def _beta(seed, alpha: float):
    s1, s2 = _sub_seeds(seed, 2)
    a = tf.random.stateless_gamma([], s1, alpha)
    b = tf.random.stateless_gamma([], s2, alpha)
    return a / (a + b)


def mixup_cutmix(video, labels, seed, *, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.1, prob: float = 1.0):
    """Mixup / cutmix of one clip group as the official `CutmixMixupBlending`: one lambda, one choice and one
    box for the group, partners a random permutation of it (torch.randperm; a clip may be its own partner).

    video: float [b, T, H, W, 3]; labels int [b]. With both alphas > 0, cutmix is used with
    probability switch_prob (box shared by all frames, lambda corrected to the box area).
    Returns (video, targets float32 [b, num_classes]) where targets are the label-smoothed
    one-hots mixed with the same lambda, so each row sums to 1.
    """
    s_apply, s_switch, s_mix, s_cut, s_box, s_perm = _sub_seeds(seed, 6)
    y1 = smooth_one_hot(labels, num_classes, label_smoothing)
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or prob <= 0:
        return video, y1
    perm = tf.argsort(tf.random.stateless_uniform(tf.shape(labels)[:1], s_perm))
    y2 = tf.gather(y1, perm)
    partner = tf.gather(video, perm)
    apply = tf.random.stateless_uniform([], s_apply) < prob
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], s_switch) < switch_prob
    else:
        use_cutmix = tf.constant(cutmix_alpha > 0)
    lam_mix = _beta(s_mix, mixup_alpha) if mixup_alpha > 0 else tf.constant(1.0)
    lam_cut = _beta(s_cut, cutmix_alpha) if cutmix_alpha > 0 else tf.constant(1.0)

    shape = tf.shape(video)
    h, w = shape[2], shape[3]
    cut_rat = tf.sqrt(1.0 - lam_cut)
    cut_h = tf.cast(tf.cast(h, tf.float32) * cut_rat, tf.int32)
    cut_w = tf.cast(tf.cast(w, tf.float32) * cut_rat, tf.int32)
    sy, sx = _sub_seeds(s_box, 2)
    cy = tf.random.stateless_uniform([], sy, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], sx, 0, w, dtype=tf.int32)
    y0, y1b = tf.clip_by_value(cy - cut_h // 2, 0, h), tf.clip_by_value(cy + cut_h // 2, 0, h)
    x0, x1b = tf.clip_by_value(cx - cut_w // 2, 0, w), tf.clip_by_value(cx + cut_w // 2, 0, w)
    ys, xs = tf.range(h), tf.range(w)
    box = ((ys[:, None] >= y0) & (ys[:, None] < y1b)) & ((xs[None, :] >= x0) & (xs[None, :] < x1b))  # [H, W]
    lam_cut_area = 1.0 - tf.cast((y1b - y0) * (x1b - x0), tf.float32) / tf.cast(h * w, tf.float32)

    lam = tf.where(apply, tf.where(use_cutmix, lam_cut_area, lam_mix), 1.0)
    # tf.cond so that only the chosen mix is computed, with broadcasting arithmetic instead of
    # a broadcast tf.where (much slower on CPU for clip-sized tensors).
    keep = tf.cast(~box, video.dtype)[None, None, :, :, None]  # [1, 1, H, W, 1]
    video = tf.cond(apply,
                    lambda: tf.cond(use_cutmix,
                                    lambda: video * keep + partner * (1.0 - keep),  # exact: keep is 0/1
                                    lambda: partner + (video - partner) * lam_mix),
                    lambda: video)
    targets = y1 * lam + y2 * (1.0 - lam)
    return video, targets
