"""Shared base of the OV-OAD configs: the released training recipe on top of tcvideo's base config.

AdamW (0.9, 0.999), weight decay 0.05 (not on biases / norms / logit scales: the task labels them
'no_decay'), lr 6.4e-5 x batch / 4096 with 2 warmup epochs and cosine to 1.6e-5 x batch / 4096, 30 epochs,
global-norm clip 5, mixed precision. (The trainer warms up from 0, not from 1.6e-6.)
"""
import ml_collections

from tcvideo.ov_oad.task import default_ov_oad_config
from tcvideo.core.config import base_config


def thumos14_classes() -> tuple:
    return ("background", "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
            "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump",
            "JavelinThrow", "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing",
            "ThrowDiscus", "VolleyballSpiking")


def tvseries_classes() -> tuple:
    return ("background", "Pick something up", "Point", "Drink", "Stand up", "Run", "Sit down", "Read",
            "Smoke", "Drive car", "Open door", "Give something", "Use computer", "Write", "Go down stairway",
            "Close door", "Throw something", "Go up stairway", "Get in/out of car", "Hang up phone", "Eat",
            "Answer phone", "Dress up", "Clap", "Undress", "Kiss", "Fall/trip", "Wave", "Pour", "Punch",
            "Fire weapon")


def eval_target(source: str, features: str = "", annotations: str = "", annotation_format: str = "",
                classes: tuple = (), metric: str = "mAP", subset: str = "") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(source=source, features=features, annotations=annotations,
                                          annotation_format=annotation_format, classes=classes, metric=metric,
                                          subset=subset))


def ov_oad_base_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "ov_oad"
    c.task = "ov_oad"
    c.ov_oad = default_ov_oad_config()
    c.batch_size = 256
    c.per_device_batch_size = 32
    c.epochs = 30
    c.warmup_epochs = 2
    c.lr = 6.4e-5 * c.batch_size / 4096
    c.min_lr = 1.6e-5 * c.batch_size / 4096
    c.weight_decay = 0.05
    c.b1, c.b2 = 0.9, 0.999
    c.grad_clip = 5.0
    c.compute_dtype = "bfloat16"
    c.eval.final = True
    return c
