"""Built-in default of `python -m tcvideo.main`: a small demo that runs on a laptop CPU."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = "demo"
    config.mode = "demo"
    config.clip = "tiny"
    config.num_frames = 8
    config.seed = 0
    config.class_names = ["moving left", "moving right", "growing", "shrinking"]
    return config
