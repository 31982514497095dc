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


def thumos14_prompt_names() -> tuple:
    """The class names the released evaluation writes into its THUMOS'14 prompts (``ThumosImgLoader.CLASSES`` of
    daebb20 oad/datasets/datasets_utils.py): lower case, words spaced, in the order of ``thumos14_classes``.
    ("VolleyballSpiking" itself tokenises as 'volley ball spi king'.)"""
    return ("background", "baseball pitch", "basketball dunk", "billiards", "clean and jerk", "cliff diving",
            "cricket bowling", "cricket shot", "diving", "frisbee catch", "golf swing", "hammer throw", "high jump",
            "javelin throw", "long jump", "pole vault", "shotput", "soccer penalty", "tennis swing", "throw discus",
            "volleyball spiking")


def tvseries_prompt_names() -> tuple:
    """The released TVSeries prompt names (``TVSeriesImgLoader.CLASSES``; 'Background' capitalised as there)."""
    return ("Background",) + tvseries_classes()[1:]


def eval_target(source: str, features: str = "", annotations: str = "", annotation_format: str = "",
                classes: tuple = (), metric: str = "mAP", subset: str = "", prompt_names: tuple = (),
                zero_shot_pool: str = "") -> ml_collections.ConfigDict:
    """One evaluation target. ``prompt_names``: the names in the prompts (order of ``classes``); set
    ``prompt_names_file`` instead to read them one per line from a file. ``zero_shot_pool``: the plain-CLIP
    prior's pooling ('means': window mean, the released THUMOS eval_type; 'single': last frame, TVSeries)."""
    return ml_collections.ConfigDict(dict(source=source, features=features, annotations=annotations,
                                          annotation_format=annotation_format, classes=classes, metric=metric,
                                          subset=subset, prompt_names=prompt_names, prompt_names_file="",
                                          zero_shot_pool=zero_shot_pool))


def thumos14_target(features: str, annotations: str) -> ml_collections.ConfigDict:
    """The released THUMOS'14 protocol: official prompt names, CLIP prior averaged over the window, mAP."""
    return eval_target("files", features, annotations, "thumos14", thumos14_classes(), "mAP",
                       prompt_names=thumos14_prompt_names(), zero_shot_pool="means")


def tvseries_target(features: str, annotations: str) -> ml_collections.ConfigDict:
    """The released TVSeries protocol: official prompt names, CLIP prior of the last frame, mcAP."""
    return eval_target("files", features, annotations, "tvseries", tvseries_classes(), "mcAP",
                       prompt_names=tvseries_prompt_names(), zero_shot_pool="single")


def ov_oad_base_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "ov_oad"
    c.task = "ov_oad"
    c.ov_oad = default_ov_oad_config()
    c.batch_size = 256
    # The whole global batch in one step on any device count (released: 32 per GPU x 8 GPUs, no accumulation),
    # so that the contrastive losses see all 256 windows' captions as negatives (config.ov_oad.negatives).
    c.per_device_batch_size = 256
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
