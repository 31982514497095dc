"""Per-video frame features: reading (OV-OAD and FS-CAL) and writing.

``read_feature_file`` is the one reader of per-video feature files, ``find_feature_file`` finds a video's
file by id. Readable layouts of ``load_videos(path, ...)`` (OV-OAD):

* a TFDS dataset directory written by ``tcvideo extract-features`` (``OADFeatures`` below; features
  'name', 'rgb' [T, D] float16, 'fps', 'duration');
* a directory of released-style per-video files ``{name}.pkl`` holding ``{"rgb": [T, D], "captions":
  {id: [start, end, text]}, "fps", "vlen_src"}`` (``.npz`` with the same keys, its features also as
  ``features`` or its only array; or ``.npy`` with rgb only, assuming 4 fps: what
  ``tcvideo extract-features --format=npy`` writes and FS-CAL reads memory-mapped).

Segments from an annotation file are attached by video name (``v_`` prefixes of ActivityNet ids are
tolerated); a file's own captions are used when the annotation file has none for that video.
"""
from __future__ import annotations

import functools
import glob
import os
import pickle
import zipfile
from typing import Callable, Iterable, Optional

import numpy as np

from tcvideo.core import safe_pickle
from data_pipelines.temporal.video import FPS, OADVideo, Segment
from tcvideo.core.config import InputError, library_reason

FILE_EXTS = (".pkl", ".pickle", ".npz", ".npy")
# The order ``find_feature_file`` tries: memory-mappable .npy first.
LOOKUP_EXTS = (".npy", ".npz", ".pkl", ".pickle")
FEATURE_KEYS = ("rgb", "features")  # names of the [T, D] array in a .npz / .pkl, in order of preference


def video_name_variants(name: str) -> tuple[str, str]:
    """A video id and its ActivityNet twin: ids are ``abc``, released files ``v_abc`` (or the reverse)."""
    return (name, name[2:]) if name.startswith("v_") else (name, "v_" + name)


def find_feature_file(directory: str, video: str) -> Optional[str]:
    """The feature file of ``video`` in ``directory`` (``<video><ext>`` or its ``v_`` twin), else None."""
    for stem in video_name_variants(video):
        for ext in LOOKUP_EXTS:
            p = os.path.join(directory, stem + ext)
            if os.path.exists(p):
                return p
    return None


def _read_npz(path: str) -> dict:
    """A .npz's {key: array}. Object arrays (released files keep captions in one) are unpickled by the
    restricted unpickler, never by ``np.load(allow_pickle=True)``, which would run code from the file."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            with z.open(member) as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                if dtype.hasobject:
                    arr = safe_pickle.load(f, path=f"{path}:{member}")
                else:
                    arr = np.frombuffer(bytearray(f.read()), dtype=dtype).reshape(shape, order="F" if fortran else "C")
            out[member[:-4] if member.endswith(".npy") else member] = arr
    return out


def _read_raw(path: str, mmap: bool) -> object:
    """A file's contents: a .pkl's object, a .npz's {key: array}, a .npy's {'rgb': array}. InputError naming
    the file when it is gone or cannot be decoded (a run never skips a video: that would shift its data)."""
    if not path.endswith(FILE_EXTS):
        raise ValueError(f"{path}: unknown feature file type (expected one of {FILE_EXTS})")
    try:
        return _load(path, mmap)
    except safe_pickle.UnsafePickleError:  # a refused file is not a read fault: its own message names it
        raise
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise InputError(f"input file {path} cannot be read: {library_reason(e)}") from e


def _load(path: str, mmap: bool) -> object:
    if path.endswith((".pkl", ".pickle")):
        return safe_pickle.load_file(path)
    if path.endswith(".npz"):
        return _read_npz(path)
    return {"rgb": np.load(path, mmap_mode="r" if mmap else None)}  # .npy


def read_feature_file(path: str, *, mmap: bool = False) -> dict:
    """One per-video file -> {'rgb': [T, D], 'fps': float, 'duration': float|None, 'captions': [Segment]}.

    The features are the 'rgb' entry, else 'features', else a file's only entry. ``mmap``: a ``.npy``
    file's features are memory-mapped (read-only, read when indexed), not loaded. ValueError naming the
    file when it holds no [T, D] features with T >= 1."""
    raw = _read_raw(path, mmap)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict with key 'rgb' [T, D], got a {type(raw).__name__}")
    key = next((k for k in FEATURE_KEYS if k in raw), next(iter(raw)) if len(raw) == 1 else None)
    if key is None:
        raise ValueError(f"{path}: no {' or '.join(map(repr, FEATURE_KEYS))} array among {sorted(raw)}")
    rgb = np.asarray(raw[key])
    if rgb.ndim != 2 or rgb.shape[0] < 1:
        raise ValueError(f"{path}: features must be [T, D] with T >= 1, got shape {rgb.shape}")
    captions = raw.get("captions")
    if isinstance(captions, np.ndarray):  # a .npz's 0-d object array
        captions = captions.item()
    caps = []
    for k, c in dict(captions or {}).items():
        if len(c) != 3:
            raise ValueError(f"{path}: caption {k!r} is not [start, end, text]")
        caps.append(Segment(float(c[0]), float(c[1]), None, text=str(c[2])))
    fps = float(np.asarray(raw.get("fps", FPS)))
    dur = raw.get("duration", raw.get("vlen_src"))
    return {"rgb": rgb, "fps": fps, "duration": None if dur is None else float(np.asarray(dur)), "captions": caps}


def _tfds_info_files(path: str) -> list[str]:
    """dataset_info.json at path, path/VERSION or path/NAME/VERSION (what write_tfds leaves)."""
    return sorted(f for depth in ("", "*", "*/*") for f in glob.glob(os.path.join(path, depth, "dataset_info.json")))


def _is_tfds_dir(path: str) -> bool:
    return bool(_tfds_info_files(path))


def iter_feature_files(path: str) -> Iterable[tuple[str, dict]]:
    """(video name, read_feature_file dict) of every video under ``path`` (TFDS dir or file dir)."""
    if _is_tfds_dir(path):
        import tensorflow_datasets as tfds
        builder = tfds.builder_from_directory(_tfds_version_dir(path))
        for split in builder.info.splits:
            for ex in tfds.as_numpy(builder.as_dataset(split=split)):
                name = ex["name"].decode() if isinstance(ex["name"], bytes) else str(ex["name"])
                yield name, {"rgb": ex["rgb"], "fps": float(ex["fps"]), "duration": float(ex["duration"]),
                             "captions": []}
        return
    files = sorted(f for f in glob.glob(os.path.join(path, "*")) if f.endswith(FILE_EXTS))
    if not files:
        raise FileNotFoundError(f"{path}: no feature files ({', '.join(FILE_EXTS)}) and not a TFDS dataset")
    for f in files:
        yield os.path.splitext(os.path.basename(f))[0], read_feature_file(f)


def _tfds_version_dir(path: str) -> str:
    return os.path.dirname(_tfds_info_files(path)[-1])


def load_videos(path: str, segments: Optional[dict] = None, *, feature_dim: Optional[int] = None,
                require_annotation: bool = True) -> list[OADVideo]:
    """OADVideos of the feature files under ``path`` with ``segments`` ({name: [Segment]}) attached.

    With ``require_annotation`` only videos named in ``segments`` are kept (an evaluation split); a
    ``feature_dim`` mismatch raises ValueError naming the video.
    """
    segments = segments or {}
    out = []
    for name, d in iter_feature_files(path):
        key = next((k for k in video_name_variants(name) if k in segments), None)
        if key is None and require_annotation and segments:
            continue
        if feature_dim is not None and d["rgb"].shape[1] != feature_dim:
            raise ValueError(f"{path}/{name}: features of size {d['rgb'].shape[1]}, the model expects {feature_dim}")
        segs = list(segments.get(key, [])) if key is not None else []
        if not segs:
            segs = d["captions"]
        out.append(OADVideo(name=name, features=np.asarray(d["rgb"]), fps=d["fps"], segments=segs,
                            duration=d["duration"]))
    if segments and not out:
        raise ValueError(f"{path}: none of the {len(segments)} annotated videos has a feature file")
    return out


# ----------------------------------------------------------------------------- writing (TFDS)

@functools.lru_cache(maxsize=None)
def _builder_class():
    """The TFDS builder of feature datasets (defined once: TFDS registers builder classes by name)."""
    import tensorflow_datasets as tfds

    class OadFeatures(tfds.core.GeneratorBasedBuilder):
        """Per-video CLIP frame features at 4 fps: name, rgb [T, D] float16, fps, duration (s)."""

        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, *, feature_dim: int, examples=None, split: str = "train", **kwargs):
            self._feature_dim, self._examples, self._split = feature_dim, examples, split
            super().__init__(**kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=tfds.features.FeaturesDict({
                "name": tfds.features.Text(),
                "rgb": tfds.features.Tensor(shape=(None, self._feature_dim), dtype=np.float16),
                "fps": tfds.features.Scalar(dtype=np.float32),
                "duration": tfds.features.Scalar(dtype=np.float32)}))

        def _split_generators(self, dl_manager):
            return {self._split: self._generate_examples()}

        def _generate_examples(self):
            for ex in self._examples():
                yield ex["name"], {"name": ex["name"], "rgb": np.asarray(ex["rgb"], np.float16),
                                   "fps": np.float32(ex["fps"]), "duration": np.float32(ex["duration"])}

    return OadFeatures


def write_tfds(out_dir: str, examples: Callable[[], Iterable[dict]], *, feature_dim: int,
               split: str = "train") -> str:
    """Write examples ({'name', 'rgb' [T, D], 'fps', 'duration'}) as a TFDS dataset (rgb stored float16)
    under out_dir; returns the dataset's version directory (what ``load_videos`` reads)."""
    builder = _builder_class()(feature_dim=feature_dim, examples=examples, split=split, data_dir=out_dir)
    builder.download_and_prepare()
    return builder.data_dir
