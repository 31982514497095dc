"""Command line build of a `VideoFolder` dataset (the `tfds build` of this project).

    python -m data_pipelines.video.build --data_dir ~/tensorflow_datasets --config '{"name": "ucf101_s1",
        "video_dir": "/data/UCF-101", "annotation_format": "ucf101",
        "annotations": {"train": "/data/ucfTrainTestlist/trainlist01.txt",
                        "test": "/data/ucfTrainTestlist/testlist01.txt"},
        "class_names_file": "/data/ucfTrainTestlist/classInd.txt"}'

`--config` takes the `VideoFolderConfig` fields as JSON, or `@file.json`. `--beam` builds with
Apache Beam's DirectRunner (`pip install .[beam]`). Prints the dataset folder to pass as
`config.data.data_dir` and the build report (skipped files with reasons). Exit status 2 on a bad
configuration (unknown field, missing file), naming it.

(`tfds build data_pipelines/video/video_folder.py --config '{...}'` builds the same dataset where
TFDS's CLI is installed with its optional `mlcroissant` dependency.)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence


def parse_config(text: str) -> dict:
    """JSON text or '@path' -> dict of VideoFolderConfig fields (ValueError naming what is wrong)."""
    src = "--config"
    if text.startswith("@"):
        src = text[1:]
        if not os.path.isfile(src):
            raise ValueError(f"--config: no such file {src!r}")
        with open(src, encoding="utf-8") as f:
            text = f.read()
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{src}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{src}: expected a JSON object of VideoFolderConfig fields")
    return cfg


def check_config(cfg: dict) -> None:
    """Unknown fields and missing paths, before any work."""
    from data_pipelines.video.video_folder import VideoFolderConfig
    known = {f.name for f in dataclasses.fields(VideoFolderConfig)}
    for k in cfg:
        if k not in known:
            raise ValueError(f"config field {k!r} is not a VideoFolderConfig field; known: {sorted(known)}")
    for k in ("name", "video_dir", "annotations"):
        if not cfg.get(k):
            raise ValueError(f"config field {k!r} is required")
    if not os.path.isdir(cfg["video_dir"]):
        raise ValueError(f"config field 'video_dir': no such directory {cfg['video_dir']!r}")
    for split, path in cfg["annotations"].items():
        if not os.path.exists(path):
            raise ValueError(f"config field 'annotations.{split}': no such file {path!r}")
    if cfg.get("class_names_file") and not os.path.isfile(cfg["class_names_file"]):
        raise ValueError(f"config field 'class_names_file': no such file {cfg['class_names_file']!r}")


def build(cfg: dict, data_dir: str, beam: bool = False):
    """Build (or find already built) the dataset -> (dataset folder, build report dict)."""
    from data_pipelines.video.video_folder import VideoFolder, VideoFolderConfig, read_build_report
    builder = VideoFolder(config=VideoFolderConfig(**cfg), data_dir=os.path.expanduser(data_dir))
    kwargs = {}
    if beam:
        import apache_beam
        import tensorflow_datasets as tfds
        kwargs["download_config"] = tfds.download.DownloadConfig(beam_runner=apache_beam.runners.DirectRunner())
    builder.download_and_prepare(**kwargs)
    return builder.data_dir, read_build_report(builder.data_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipelines.video.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="~/tensorflow_datasets", help="TFDS data folder")
    p.add_argument("--config", required=True, help="VideoFolderConfig fields as JSON, or @file.json")
    p.add_argument("--beam", action="store_true", help="build with Apache Beam's DirectRunner")
    args = p.parse_args(argv)
    try:
        cfg = parse_config(args.config)
        check_config(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()  # one bar per split: the build's own (video_folder._generate_local)
    folder, report = build(cfg, args.data_dir, beam=args.beam)
    for split, r in report["splits"].items():
        print(f"{split}: {r['num_examples']} examples, {r['num_skipped']} skipped of {r['listed']} listed")
        for s in r["skipped"]:
            print(f"  skipped {s['path']}: {s['reason']}")
    print(f"dataset: {folder}")
    print(f"train with: --config.data.name=video_folder --config.data.data_dir={folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
