"""Base-to-novel on SSv2 (base2novel.py with ssv2_splits/ and ssv2_174_{base,novel}_labels.csv): flip off, as
the official code does for every dataset named ssv2."""
from tcvideo.core.config import config_module

base2novel = config_module(__file__, "base2novel.py")


def get_config():
    c = base2novel.get_config()
    c.name = "tc_clip_base2novel_ssv2"
    c.data.flip = False
    return c
