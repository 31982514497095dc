"""TFDS builder for "a folder of videos + an annotation list", and its input source.

Examples are stored as JPEG frames (short side resized at build time) in ArrayRecord
files, so the input pipeline can read any example by index (exact resume, global
shuffling) and decodes only the frames it samples.

Build (parallel on local cores, or on Apache Beam for datasets that outgrow a machine):

    builder = VideoFolder(config=VideoFolderConfig(name="ucf101_s1", video_dir=...,
                          annotations={"train": ".../trainlist01.txt", "test": ".../testlist01.txt"},
                          annotation_format="ucf101", class_names_file=".../classInd.txt"),
                          data_dir="~/tensorflow_datasets")
    builder.download_and_prepare()          # + download_config=DownloadConfig(beam_runner=...)

Bad videos never abort a build: each is skipped and listed with its reason in
`<data_dir>/video_folder/<config>/<version>/build_report.json` (and the log).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import multiprocessing
import os
import shutil
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipelines.video import register_dataset
from data_pipelines.video.annotations import load_class_names, parse_annotations, hmdb_class_names
from data_pipelines.video.video_io import process_video
from tcvideo.core.config import InputError, library_reason

log = logging.getLogger(__name__)
REPORT_FILE = "build_report.json"


@dataclasses.dataclass(eq=False)
class VideoFolderConfig(tfds.core.BuilderConfig):
    """What to build. `annotations` maps split name -> annotation file (for hmdb51: the
    folder of split files; the subset is 'train' for splits named train*, else 'test')."""

    video_dir: str = ""
    annotations: dict = dataclasses.field(default_factory=dict)
    annotation_format: str = "auto"
    class_names_file: str = ""
    short_side: int = 256
    fps_cap: float = 0.0  # 0 = keep the source rate
    max_frames: int = 0  # 0 = all frames
    jpeg_quality: int = 90
    num_workers: int = 0  # 0 = all local cores
    split_id: int = 1  # HMDB-51 split 1-3


def _is_ok(result) -> bool:
    return result[2] is None


def _is_bad(result) -> bool:
    return result[2] is not None


def _to_key_example(result):
    return result[0], result[1]


def _index_line(result) -> str:
    key, ex, _ = result
    return json.dumps([int(key), int(ex["label"]), int(ex["num_frames"])])


class VideoFolder(tfds.core.GeneratorBasedBuilder):
    """Videos listed in annotation files, stored as JPEG frames."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    # A placeholder so that `tfds build --config '{json}'` can infer the config class.
    BUILDER_CONFIGS = [VideoFolderConfig(name="default", description="set video_dir and annotations")]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("file_format", "array_record")  # random access for the input pipeline
        super().__init__(*args, **kwargs)
        self._report: dict[str, dict] = {}
        self._index: dict[str, list] = {}
        self._use_beam = False
        self._pool = None

    # -------------------------------------------------------------------- TFDS hooks
    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        names = self._class_names() if cfg.annotations else []
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local videos as JPEG frames (short side %d)." % cfg.short_side,
            features=tfds.features.FeaturesDict({
                "video": tfds.features.Sequence(tfds.features.Tensor(shape=(), dtype=tf.string)),
                "label": tfds.features.ClassLabel(names=names) if names else tfds.features.ClassLabel(num_classes=1),
                "path": tfds.features.Text(),
                "fps": tfds.features.Scalar(dtype=np.float32),
                "duration": tfds.features.Scalar(dtype=np.float32),
                "num_frames": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("video", "label"),
            # Examples stay in annotation order (int keys): the input pipeline does its own
            # seeded global shuffle, and the order lets the build write a label index.
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _class_names(self) -> list[str]:
        cfg = self.builder_config
        if cfg.class_names_file:
            return load_class_names(cfg.class_names_file)
        if cfg.annotation_format == "hmdb51":
            return hmdb_class_names(next(iter(cfg.annotations.values())), cfg.split_id)
        if cfg.annotation_format == "kinetics":
            import csv
            names = set()
            for path in cfg.annotations.values():
                with open(path, encoding="utf-8") as f:
                    names |= {r["label"] for r in csv.DictReader(f) if r.get("label")}
            return sorted(names)
        labels = [e.label for split in cfg.annotations for e in self._entries(split, None)]
        return [str(i) for i in range(max(labels) + 1)] if labels else []

    def _entries(self, split: str, class_names):
        cfg = self.builder_config
        return parse_annotations(cfg.annotations[split], cfg.annotation_format, class_names=class_names,
                                 video_dir=cfg.video_dir, split_id=cfg.split_id,
                                 subset="train" if split.startswith("train") else "test")

    def download_and_prepare(self, *args, download_config=None, **kwargs):
        self._use_beam = bool(download_config and (download_config.beam_runner or download_config.beam_options))
        already = tf.io.gfile.exists(os.path.join(self.data_dir, "dataset_info.json"))
        try:
            super().download_and_prepare(*args, download_config=download_config, **kwargs)
        finally:
            if self._pool is not None:  # one pool for all splits: worker start-up is not free
                self._pool.terminate()
                self._pool = None
        if not already:
            self._finish_report()

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.builder_config.annotations}

    def _generate_examples(self, split: str):
        cfg = self.builder_config
        names = self.info.features["label"].names
        entries = self._entries(split, names)
        for e in entries:
            if not 0 <= e.label < len(names):
                raise ValueError(f"{cfg.annotations[split]}:{e.line}: label {e.label} outside 0..{len(names) - 1}")
        opts = dict(short_side=cfg.short_side, fps_cap=cfg.fps_cap or None, max_frames=cfg.max_frames or None,
                    jpeg_quality=cfg.jpeg_quality)
        items = [(k, os.path.join(cfg.video_dir, e.path), e.label, {**opts, "rel_path": e.path})
                 for k, e in enumerate(entries)]
        self._report[split] = {"listed": len(items), "paths": {k: e.path for k, e in enumerate(entries)},
                               "skipped": []}
        if self._use_beam:
            return self._beam_transform(split, items)
        return self._generate_local(split, items)

    # -------------------------------------------------------------------- local (multiprocessing)
    def _generate_local(self, split: str, items):
        workers = self.builder_config.num_workers or os.cpu_count() or 1
        report = self._report[split]
        index = self._index.setdefault(split, [])

        def handle(result):
            key, ex, reason = result
            if reason is not None:
                report["skipped"].append({"path": report["paths"][key], "reason": reason})
                log.warning("video_folder[%s]: skipping %s: %s", split, report["paths"][key], reason)
                return None
            index.append((key, ex["label"], int(ex["num_frames"])))
            return key, ex

        from tcvideo.core.console import Progress
        bar = Progress(f"dataset build [{split}]", len(items), unit="videos")
        try:
            if workers <= 1 or len(items) <= 1:
                results = map(process_video, items)
            else:
                if self._pool is None:
                    # spawn: the parent holds TF threads, which fork would copy in an undefined state.
                    # (Scripts calling a build therefore need an `if __name__ == "__main__":` guard.)
                    self._pool = multiprocessing.get_context("spawn").Pool(workers)
                results = self._pool.imap_unordered(process_video, items, chunksize=1)
            for result in results:
                out = handle(result)
                bar.update(skipped=len(report["skipped"]))
                if out:
                    yield out
        finally:
            bar.close()

    # -------------------------------------------------------------------- beam
    def _parts_dir(self, split: str) -> str:
        return os.path.join(self._data_dir_root, "_video_folder_parts", self.builder_config.name, split)

    def _beam_transform(self, split: str, items):
        beam = tfds.core.lazy_imports.apache_beam
        parts = self._parts_dir(split)
        if tf.io.gfile.exists(parts):
            tf.io.gfile.rmtree(parts)
        tf.io.gfile.makedirs(parts)
        paths = self._report[split]["paths"]

        def skipped_line(result):
            return json.dumps({"path": paths[result[0]], "reason": result[2]})

        class _Generate(beam.PTransform):
            def expand(self, pbegin):
                results = (pbegin | "Create" >> beam.Create(items) | "Decode" >> beam.Map(process_video))
                _ = (results | "Bad" >> beam.Filter(_is_bad) | "BadJson" >> beam.Map(skipped_line)
                     | "WriteBad" >> beam.io.WriteToText(os.path.join(parts, "skipped"), shard_name_template="-SSSSS-of-NNNNN"))
                ok = results | "Ok" >> beam.Filter(_is_ok)
                _ = (ok | "IndexJson" >> beam.Map(_index_line)
                     | "WriteIndex" >> beam.io.WriteToText(os.path.join(parts, "index"), shard_name_template="-SSSSS-of-NNNNN"))
                return ok | "KeyExample" >> beam.Map(_to_key_example)

        return _Generate()

    def _collect_beam_parts(self, split: str):
        parts = self._parts_dir(split)
        report = self._report[split]
        for f in sorted(glob.glob(os.path.join(parts, "skipped-*"))):
            with open(f, encoding="utf-8") as fh:
                report["skipped"].extend(json.loads(ln) for ln in fh if ln.strip())
        index = self._index.setdefault(split, [])
        for f in sorted(glob.glob(os.path.join(parts, "index-*"))):
            with open(f, encoding="utf-8") as fh:
                index.extend(tuple(json.loads(ln)) for ln in fh if ln.strip())
        for r in report["skipped"]:
            log.warning("video_folder[%s]: skipping %s: %s", split, r["path"], r["reason"])
        shutil.rmtree(parts, ignore_errors=True)

    # -------------------------------------------------------------------- report
    def _finish_report(self):
        out: dict[str, Any] = {"config": self.builder_config.name, "splits": {}}
        for split, rep in self._report.items():
            if self._use_beam:
                self._collect_beam_parts(split)
            index = sorted(self._index.get(split, []))  # disable_shuffling: stored in key order
            skipped = sorted(rep["skipped"], key=lambda r: r["path"])
            stored = self.info.splits[split].num_examples
            if stored != len(index) or rep["listed"] != len(index) + len(skipped):
                raise RuntimeError(f"video_folder[{split}]: inconsistent counts: listed {rep['listed']}, "
                                   f"stored {stored}, indexed {len(index)}, skipped {len(skipped)}")
            out["splits"][split] = {"listed": rep["listed"], "num_examples": stored,
                                    "num_skipped": len(skipped), "skipped": skipped}
            np.savez(os.path.join(self.data_dir, f"index_{split}.npz"),
                     labels=np.array([i[1] for i in index], np.int32),
                     num_frames=np.array([i[2] for i in index], np.int32),
                     paths=np.array([rep["paths"][int(i[0])] for i in index], dtype=str))
            log.info("video_folder[%s]: %d listed, %d stored, %d skipped", split, rep["listed"], stored, len(skipped))
        with tf.io.gfile.GFile(os.path.join(self.data_dir, REPORT_FILE), "w") as f:
            json.dump(out, f, indent=1)
        self.build_report = out


def read_build_report(dataset_dir: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(dataset_dir, REPORT_FILE)) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- input source

class VideoFolderSplit:
    """Random access to one built split: labels / frame counts without reading videos."""

    is_jpeg = True

    def __init__(self, builder, split: str):
        self._source = builder.as_data_source(split)
        self._paths = None
        info = builder.info.splits[split]
        self._split, self._shards = split, [str(f) for f in info.filepaths]
        self._shard_ends = np.cumsum(info.shard_lengths)
        path = os.path.join(builder.data_dir, f"index_{split}.npz")
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, "rb") as f:
                z = np.load(f)
                self.labels, self._num_frames = z["labels"], z["num_frames"]
                if "paths" in z.files:
                    self._paths = [str(x) for x in z["paths"]]
        else:  # e.g. a dataset built elsewhere without the index: one full read
            recs = [self._source[i] for i in range(len(self._source))]
            self.labels = np.array([r["label"] for r in recs], np.int32)
            self._num_frames = np.array([r["num_frames"] for r in recs], np.int32)
        if len(self.labels) != len(self._source):
            raise RuntimeError(f"{path} has {len(self.labels)} entries for {len(self._source)} examples")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def paths(self) -> list[str]:
        """Each example's video path relative to the build's video_dir (split files select by it)."""
        if self._paths is None:  # built before the index held paths: one full read
            self._paths = [_text(self._source[i]["path"]) for i in range(len(self._source))]
        return self._paths

    def num_frames(self, i: int) -> int:
        return int(self._num_frames[i])

    def shard_of(self, i: int) -> str:
        """The file holding example i."""
        k = int(np.searchsorted(self._shard_ends, int(i), side="right"))
        return self._shards[min(k, len(self._shards) - 1)]

    def get_frames(self, i: int, indices: np.ndarray) -> list[bytes]:
        """JPEG bytes of frames `indices` of example i (decoded later, in the TF graph). InputError naming
        the shard when it cannot be read (gone, corrupt): never skipped, which would shift the stream."""
        try:
            video = self._source[int(i)]["video"]
        except Exception as e:  # noqa: BLE001 - array_record's errors name no file
            raise InputError(f"input file {self.shard_of(i)} (example {int(i)} of split {self._split!r}) cannot be "
                             f"read: {library_reason(e)}") from e
        return [video[j] for j in indices]


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class VideoFolderDataset:
    def __init__(self, data_dir: str):
        self.builder = tfds.builder_from_directory(os.path.expanduser(data_dir))
        self.class_names = list(self.builder.info.features["label"].names)
        self.num_examples = {k: v.num_examples for k, v in self.builder.info.splits.items()}

    def split(self, name: str) -> VideoFolderSplit:
        return VideoFolderSplit(self.builder, name)


@register_dataset("video_folder")
def _make_video_folder(config=None, data_dir: str | None = None, **_) -> VideoFolderDataset:
    """data_dir: the built version folder, e.g. ~/tensorflow_datasets/video_folder/ucf101_s1/1.0.0."""
    return VideoFolderDataset(data_dir or config.data_dir)
