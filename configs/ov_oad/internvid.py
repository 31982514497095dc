"""OV-OAD pre-trained on InternVid-style video-text pairs (real captions: ``video_id start end text`` lines or
JSON), evaluated zero-shot on THUMOS'14 and TVSeries. Paths are placeholders."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anet import get_config as anet_config  # noqa: E402


def get_config():
    c = anet_config()
    c.name = "ov_oad_internvid"
    c.ov_oad.caption_mode = "captions"
    c.ov_oad.train.features = "/data/ov_oad/internvid_features"
    c.ov_oad.train.annotations = "/data/ov_oad/internvid_captions.txt"
    c.ov_oad.train.annotation_format = "captions"
    return c
