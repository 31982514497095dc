"""OV-OAD pre-trained on InternVid-style video-text pairs (real captions: ``video_id start end text`` lines or
JSON), evaluated zero-shot on THUMOS'14 and TVSeries. Paths are placeholders."""
from tcvideo.core.config import config_module

_anet = config_module(__file__, "anet.py")
anet_config = _anet.get_config


def get_config():
    c = anet_config()
    c.name = "ov_oad_internvid"
    c.ov_oad.caption_mode = "captions"
    c.ov_oad.train.features = "/data/ov_oad/internvid_features"
    c.ov_oad.train.annotations = "/data/ov_oad/internvid_captions.txt"
    c.ov_oad.train.annotation_format = "captions"
    return c
