"""``tcvideo extract-features``' video listing uses the dataset builder's extensions."""
import os

from data_pipelines.video.annotations import VIDEO_EXTENSIONS
from tcvideo.clip import extract


def test_extract_features_lists_what_the_builder_accepts(tmp_path):
    names = ["b.mpg", "a.MP4", "c.mpeg", "d.txt", "e.npy", "f.gif"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    got = [os.path.basename(p) for p in extract.list_videos(str(tmp_path))]
    assert got == ["a.MP4", "b.mpg", "c.mpeg", "f.gif"]  # sorted; case-insensitive; no .txt / .npy
    assert {".mpg", ".mpeg", ".flv", ".gif"} <= set(VIDEO_EXTENSIONS)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'b.mpg'}\n\n{tmp_path / 'd.txt'}\n")
    assert extract.list_videos(str(listing)) == [str(tmp_path / "b.mpg"), str(tmp_path / "d.txt")]  # as listed
