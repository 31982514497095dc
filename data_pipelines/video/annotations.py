"""Parsers for video-classification annotation lists and class-name files.

Every parser returns a list of `Entry(path, label, line)` with `path` relative to the
video folder and `label` a 0-based class id; errors name the file and line.

Formats (`fmt`):
  mmaction  `relative/path.mp4 3`                     (whitespace separated, label last)
  csv       `relative/path.mp4,3` or `path,class name` (optional header `path,label`)
  kinetics  official CSV with header containing youtube_id,time_start,time_end[,split][,label];
            files named `{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,mkv,webm}`
            anywhere under the video folder (flat or `{label}/` sub-folders).
  ucf101    official trainlistNN.txt (`Class/v_Class_g08_c01.avi 1`, 1-based) or
            testlistNN.txt (`Class/v_Class_g01_c01.avi`, label from folder + classInd.txt)
  hmdb51    official testTrainMulti_7030_splits folder: `<class>_test_split<k>.txt` with
            lines `<video>.avi <0|1|2>` (1 = train, 2 = test); pass split_id and subset.
  ssv2      Something-Something-v2 JSON list ({"id", "template", ...}) + labels.json
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import re
from typing import Iterable, Sequence

FORMATS = ("mmaction", "csv", "kinetics", "ucf101", "hmdb51", "ssv2")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".gif")


class AnnotationError(ValueError):
    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line = file, line
        loc = f"{file}:{line}" if line is not None else file
        super().__init__(f"{loc}: {message}")


@dataclasses.dataclass(frozen=True)
class Entry:
    path: str  # relative to the video folder
    label: int  # 0-based class id
    line: int  # 1-based line (or record index for JSON) in the annotation file


# ----------------------------------------------------------------------------- class names

def load_class_names(path: str) -> list[str]:
    """Class names indexed by id from CSV `id,name`, JSON or plain text.

    JSON may map {id: text} (TC-CLIP label / LLM-description files) or {text: id}
    (SSv2 labels.json). Plain text is one name per line, or `id name` lines; UCF's
    classInd.txt is 1-based and is shifted to 0-based.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise AnnotationError(path, e.lineno, f"invalid JSON: {e.msg}") from None
        if isinstance(obj, list):
            return [str(x) for x in obj]
        if not isinstance(obj, dict):
            raise AnnotationError(path, None, "expected a JSON object or list")
        if all(_is_int(k) for k in obj):
            pairs = {int(k): str(v) for k, v in obj.items()}
        elif all(_is_int(v) for v in obj.values()):
            pairs = {int(v): str(k) for k, v in obj.items()}
        else:
            raise AnnotationError(path, None, "JSON must map {id: text} or {text: id}")
        return _dense(pairs, path)
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if path.endswith(".csv"):
        pairs = {}
        for lineno, row in _csv_rows(path, text):
            if lineno == 1 and not _is_int(row[0]):
                continue  # header such as `id,name`
            if len(row) < 2 or not _is_int(row[0]):
                raise AnnotationError(path, lineno, f"expected `id,name`, got {row!r}")
            pairs[int(row[0])] = ",".join(row[1:]).strip()
        return _dense(pairs, path)
    # Plain text: `id name` lines when every line starts with an integer, else one name a line.
    if lines and all(re.match(r"^\d+\s+\S", ln) for _, ln in lines):
        pairs = {}
        for lineno, ln in lines:
            k, name = ln.split(None, 1)
            pairs[int(k)] = name.strip()
        if min(pairs) == 1 and max(pairs) == len(pairs):
            pairs = {k - 1: v for k, v in pairs.items()}  # classInd.txt is 1-based
        return _dense(pairs, path)
    return [ln for _, ln in lines]


def prettify_class_name(name: str) -> str:
    """"ApplyEyeMakeup" -> "Apply Eye Makeup", "brush_hair" -> "brush hair"."""
    name = name.replace("_", " ")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return re.sub(r"\s+", " ", name).strip()


def _dense(pairs: dict[int, str], path: str) -> list[str]:
    ids = sorted(pairs)
    if ids != list(range(len(ids))):
        missing = sorted(set(range(max(ids) + 1)) - set(ids))[:5] if ids else []
        raise AnnotationError(path, None, f"class ids are not 0..N-1 (missing e.g. {missing})")
    return [pairs[i] for i in ids]


def _is_int(x) -> bool:
    try:
        int(str(x).strip())
        return True
    except ValueError:
        return False


def _csv_rows(path: str, text: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(text.splitlines())
    for row in reader:
        if row and any(c.strip() for c in row):
            yield reader.line_num, [c.strip() for c in row]


# ----------------------------------------------------------------------------- annotation lists

def parse_annotations(path: str, fmt: str = "auto", *, class_names: Sequence[str] | None = None,
                      video_dir: str | None = None, split_id: int = 1, subset: str = "train") -> list[Entry]:
    """Parse an annotation list into entries. See the module docstring for formats.

    class_names: needed when labels are given as names (csv with names, kinetics, ssv2,
      ucf101 test lists); kinetics without it uses the sorted set of label names.
    video_dir: kinetics only, to find each clip's file whatever its extension/folder.
    split_id, subset: hmdb51 only (`path` is the folder of split files).
    """
    if fmt == "auto":
        fmt = guess_format(path)
    if fmt == "mmaction":
        return _parse_mmaction(path)
    if fmt == "csv":
        return _parse_csv(path, class_names)
    if fmt == "kinetics":
        return _parse_kinetics(path, class_names, video_dir)
    if fmt == "ucf101":
        return _parse_ucf(path, class_names)
    if fmt == "hmdb51":
        return _parse_hmdb(path, split_id, subset)
    if fmt == "ssv2":
        return _parse_ssv2(path, class_names, video_dir)
    raise ValueError(f"unknown annotation format {fmt!r}; one of {FORMATS}")


def guess_format(path: str) -> str:
    if os.path.isdir(path):
        return "hmdb51"
    if path.endswith(".json"):
        return "ssv2"
    with open(path, encoding="utf-8") as f:
        head = f.readline()
    if path.endswith(".csv"):
        return "kinetics" if "youtube_id" in head else "csv"
    return "mmaction"


def _read_lines(path: str) -> list[tuple[int, str]]:
    if not os.path.isfile(path):
        raise AnnotationError(path, None, "annotation file not found")
    with open(path, encoding="utf-8") as f:
        return [(i + 1, ln.strip()) for i, ln in enumerate(f) if ln.strip() and not ln.lstrip().startswith("#")]


def _parse_mmaction(path: str) -> list[Entry]:
    out = []
    for lineno, ln in _read_lines(path):
        parts = ln.rsplit(None, 1)  # label is the last token; the path may contain spaces
        if len(parts) != 2 or not _is_int(parts[1]):
            raise AnnotationError(path, lineno, f"expected `relative/path label`, got {ln!r}")
        out.append(Entry(parts[0], int(parts[1]), lineno))
    return out


def _label_from(value: str, name_to_id: dict[str, int] | None, path: str, lineno: int) -> int:
    if _is_int(value):
        return int(value)
    if name_to_id is None:
        raise AnnotationError(path, lineno, f"label {value!r} is a name but no class-name file was given")
    for key in (value, value.replace("_", " "), value.replace(" ", "_")):
        if key in name_to_id:
            return name_to_id[key]
    raise AnnotationError(path, lineno, f"unknown class name {value!r}")


def _parse_csv(path: str, class_names) -> list[Entry]:
    name_to_id = {n: i for i, n in enumerate(class_names)} if class_names else None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for lineno, row in _csv_rows(path, text):
        if lineno == 1 and [c.lower() for c in row[:2]] in (["path", "label"], ["video", "label"], ["filename", "label"]):
            continue
        if len(row) < 2:
            raise AnnotationError(path, lineno, f"expected `path,label`, got {row!r}")
        out.append(Entry(row[0], _label_from(row[1], name_to_id, path, lineno), lineno))
    return out


def kinetics_file_stem(youtube_id: str, time_start: str | int, time_end: str | int) -> str:
    """The usual Kinetics clip naming: `{id}_{start:06d}_{end:06d}`."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def index_video_files(video_dir: str) -> dict[str, str]:
    """stem -> path relative to video_dir, for every video file under video_dir."""
    index: dict[str, str] = {}
    for root, _, files in os.walk(video_dir):
        for fn in files:
            stem, ext = os.path.splitext(fn)
            if ext.lower() in VIDEO_EXTENSIONS:
                index.setdefault(stem, os.path.relpath(os.path.join(root, fn), video_dir))
    return index


def _parse_kinetics(path: str, class_names, video_dir: str | None) -> list[Entry]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rows = list(_csv_rows(path, text))
    if not rows:
        return []
    header = [c.lower() for c in rows[0][1]]
    for col in ("youtube_id", "time_start", "time_end"):
        if col not in header:
            raise AnnotationError(path, rows[0][0], f"Kinetics CSV header lacks {col!r}: {header}")
    if "label" not in header:
        raise AnnotationError(path, rows[0][0], "Kinetics CSV has no label column (the test split is unlabelled)")
    col = {c: header.index(c) for c in header}
    records = rows[1:]
    if class_names:
        name_to_id = {n: i for i, n in enumerate(class_names)}
    else:  # the standard ids are the alphabetical order of the label names
        name_to_id = {n: i for i, n in enumerate(sorted({r[col["label"]] for _, r in records}))}
    index = index_video_files(video_dir) if video_dir else {}
    out = []
    for lineno, r in records:
        if len(r) < len(header):
            raise AnnotationError(path, lineno, f"expected {len(header)} columns, got {len(r)}")
        stem = kinetics_file_stem(r[col["youtube_id"]], r[col["time_start"]], r[col["time_end"]])
        # A clip absent from the folder keeps a nominal path so the build reports it as missing.
        rel = index.get(stem, os.path.join(r[col["label"]], stem + ".mp4"))
        out.append(Entry(rel, _label_from(r[col["label"]], name_to_id, path, lineno), lineno))
    return out


def _parse_ucf(path: str, class_names) -> list[Entry]:
    name_to_id = {n: i for i, n in enumerate(class_names)} if class_names else None
    out = []
    for lineno, ln in _read_lines(path):
        parts = ln.split()
        if len(parts) == 2 and _is_int(parts[1]):  # trainlist: 1-based label
            out.append(Entry(parts[0], int(parts[1]) - 1, lineno))
        elif len(parts) == 1:  # testlist: class from the folder name
            cls = parts[0].split("/")[0]
            if name_to_id is None:
                raise AnnotationError(path, lineno, "UCF test lists need classInd.txt as class-name file")
            out.append(Entry(parts[0], _label_from(cls, name_to_id, path, lineno), lineno))
        else:
            raise AnnotationError(path, lineno, f"expected `Class/video.avi [label]`, got {ln!r}")
    return out


def hmdb_class_names(split_dir: str, split_id: int = 1) -> list[str]:
    """HMDB-51 class ids: alphabetical order of the class names of the split files."""
    files = glob.glob(os.path.join(split_dir, f"*_test_split{split_id}.txt"))
    if not files:
        raise AnnotationError(split_dir, None, f"no *_test_split{split_id}.txt files")
    return sorted(os.path.basename(f)[: -len(f"_test_split{split_id}.txt")] for f in files)


def _parse_hmdb(split_dir: str, split_id: int, subset: str) -> list[Entry]:
    if split_id not in (1, 2, 3):
        raise ValueError(f"HMDB-51 split_id must be 1, 2 or 3, got {split_id}")
    want = {"train": "1", "test": "2", "unused": "0"}[subset]
    out = []
    for label, cls in enumerate(hmdb_class_names(split_dir, split_id)):
        f = os.path.join(split_dir, f"{cls}_test_split{split_id}.txt")
        for lineno, ln in _read_lines(f):
            parts = ln.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f, lineno, f"expected `video.avi 0|1|2`, got {ln!r}")
            if parts[1] == want:
                out.append(Entry(f"{cls}/{parts[0]}", label, lineno))
    return out


def _parse_ssv2(path: str, class_names, video_dir: str | None = None) -> list[Entry]:
    if not class_names:
        raise AnnotationError(path, None, "SSv2 needs labels.json as class-name file")
    name_to_id = {n: i for i, n in enumerate(class_names)}
    index = index_video_files(video_dir) if video_dir else {}  # videos may be re-encoded (.mp4)
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    out = []
    for i, rec in enumerate(records):
        if "id" not in rec or "template" not in rec:
            raise AnnotationError(path, i + 1, "record lacks 'id' or 'template' (unlabelled test split?)")
        name = rec["template"].replace("[", "").replace("]", "")
        if name not in name_to_id:
            raise AnnotationError(path, i + 1, f"template {name!r} not in the class-name file")
        out.append(Entry(index.get(str(rec["id"]), f"{rec['id']}.webm"), name_to_id[name], i + 1))
    return out
