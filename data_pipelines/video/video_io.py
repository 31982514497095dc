"""Video decoding with PyAV and JPEG encoding of frames.

This module deliberately imports neither TensorFlow nor JAX: it is imported by the
worker processes of a parallel build (spawned, so every import costs start-up time)
and by Beam workers.
"""
from __future__ import annotations

import dataclasses
import io
import os
from fractions import Fraction
from typing import Any

import numpy as np

# Reason codes used in build reports. Kept short and stable so reports can be grepped.
MISSING = "missing"
EMPTY_FILE = "empty_file"
OPEN_FAILED = "open_failed"  # not a media container (or the container index is lost)
NO_VIDEO_STREAM = "no_video_stream"
DECODE_ERROR = "decode_error"
TRUNCATED = "truncated"
ZERO_FRAMES = "zero_frames"
NOT_A_VIDEO = "not_a_video"  # a still image: FFmpeg opens it as a one-frame stream

# FFmpeg demuxers for still images; animated formats (gif, apng, webp anim) stay videos.
_IMAGE_DEMUXERS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe",
                   "ppm_pipe", "pgm_pipe", "pgmyuv_pipe", "pam_pipe", "jpegls_pipe", "qoi_pipe")

# A file is called truncated when fewer than this fraction of the frames its header
# announces could be decoded (decoders often stop silently at a cut instead of raising).
_TRUNCATION_TOLERANCE = 0.9


class VideoDecodeError(Exception):
    """A video could not be used. `kind` is one of the reason codes above."""

    def __init__(self, path: str, kind: str, detail: str = ""):
        self.path = path
        self.kind = kind
        self.detail = detail
        super().__init__(f"{path}: {kind}" + (f" ({detail})" if detail else ""))

    @property
    def reason(self) -> str:
        return self.kind + (f": {self.detail}" if self.detail else "")


@dataclasses.dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    fps: float  # frame rate of `frames` (after any fps cap)
    duration: float  # seconds, of the source video
    source_fps: float


def resized_hw(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    """Size after scaling so that min(h, w) == short_side (aspect kept, even-free)."""
    if not short_side:
        return h, w
    if h <= w:
        return short_side, max(1, int(round(w * short_side / h)))
    return max(1, int(round(h * short_side / w))), short_side


def decode_video(path: str, short_side: int | None = 256, fps_cap: float | None = None,
                 max_frames: int | None = None) -> DecodedVideo:
    """Decode all frames of `path` as RGB uint8 [T, H, W, 3], short side resized.

    fps_cap: if the source frame rate exceeds it, frames are dropped on a regular
      time grid of 1 / fps_cap seconds (timestamps, not frame counts, decide, so
      variable-frame-rate files are handled).
    Raises VideoDecodeError with a reason code for every kind of bad input.
    """
    import av  # local import: keeps the module importable for annotation-only use

    if not os.path.exists(path):
        raise VideoDecodeError(path, MISSING)
    if os.path.isdir(path):
        raise VideoDecodeError(path, OPEN_FAILED, "is a directory")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, EMPTY_FILE)
    try:
        container = av.open(path)
    except Exception as e:  # PyAV raises many error types (InvalidDataError, OSError ...)
        raise VideoDecodeError(path, OPEN_FAILED, f"{type(e).__name__}: {e}") from None
    try:
        if any(n in _IMAGE_DEMUXERS for n in (container.format.name or "").split(",")):
            raise VideoDecodeError(path, NOT_A_VIDEO, f"still image ({container.format.name})")
        if not container.streams.video:
            raise VideoDecodeError(path, NO_VIDEO_STREAM)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        source_fps = float(rate) if rate else 0.0
        time_base = stream.time_base or Fraction(1, 1)
        expected = int(stream.frames or 0)
        if not expected and stream.duration and source_fps:
            expected = int(round(float(stream.duration * time_base) * source_fps))

        frames: list[np.ndarray] = []
        n_decoded = 0
        next_t = None  # next timestamp (s) at which a frame is kept under the fps cap
        first_t = None
        last_t = 0.0
        cap = fps_cap if (fps_cap and source_fps and source_fps > fps_cap * 1.001) else None
        try:
            for frame in container.decode(stream):
                n_decoded += 1
                t = float(frame.pts * time_base) if frame.pts is not None else (n_decoded - 1) / max(source_fps, 1e-6)
                first_t = t if first_t is None else first_t
                last_t = t
                if cap is not None:
                    if next_t is not None and t + 1e-6 < next_t:
                        continue
                    next_t = (t if next_t is None else next_t) + 1.0 / cap
                h, w = resized_hw(frame.height, frame.width, short_side)
                frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
                if max_frames and len(frames) >= max_frames:
                    break
        except VideoDecodeError:
            raise
        except Exception as e:
            raise VideoDecodeError(path, DECODE_ERROR,
                                   f"after {n_decoded} frames: {type(e).__name__}: {e}") from None
        if not frames:
            raise VideoDecodeError(path, ZERO_FRAMES)
        if not max_frames and expected > 1 and n_decoded < _TRUNCATION_TOLERANCE * expected:
            raise VideoDecodeError(path, TRUNCATED, f"decoded {n_decoded} of {expected} frames")
        if container.duration:
            duration = container.duration / 1e6  # av.time_base is microseconds
        elif source_fps:
            duration = n_decoded / source_fps
        else:
            duration = last_t - (first_t or 0.0)
        out_fps = cap if cap is not None else source_fps
        return DecodedVideo(np.stack(frames), float(out_fps), float(duration), source_fps)
    finally:
        container.close()


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes (PIL, so it runs in any worker without TF)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def process_video(args: tuple[str, str, int, dict[str, Any]]) -> tuple[str, dict | None, str | None]:
    """Worker entry point of a build: decode one listed video and JPEG-encode it.

    args: (key, absolute path, label, options with short_side / fps_cap / jpeg_quality /
      max_frames / rel_path). Returns (key, example or None, failure reason or None);
    never raises for bad input, so one file cannot abort a build.
    """
    key, path, label, opts = args
    try:
        vid = decode_video(path, short_side=opts.get("short_side"), fps_cap=opts.get("fps_cap"),
                           max_frames=opts.get("max_frames"))
    except VideoDecodeError as e:
        return key, None, e.reason
    except Exception as e:  # an unexpected library error is still a per-file failure
        return key, None, f"{DECODE_ERROR}: {type(e).__name__}: {e}"
    q = int(opts.get("jpeg_quality", 90))
    example = {
        "video": [encode_jpeg(f, q) for f in vid.frames],
        "label": int(label),
        "path": opts.get("rel_path", path),
        "fps": np.float32(vid.fps),
        "duration": np.float32(vid.duration),
        "num_frames": np.int32(vid.frames.shape[0]),
    }
    return key, example, None


def write_mp4(path: str, frames: np.ndarray, fps: int = 25, codec: str | None = None,
              faststart: bool = False) -> None:
    """Write uint8 [T, H, W, 3] RGB frames as an mp4 (libx264 if present, else mpeg4)."""
    import av

    if codec is None:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even sizes, got {h}x{w}")
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, mode="w", options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 2_000_000
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
