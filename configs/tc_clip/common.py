"""Shared pieces of the official TC-CLIP recipe configs (imported by the sibling config files)."""
import ml_collections

from tcvideo.classification.config import base_config, eval_target


def recipe(name: str, protocol: str, *, epochs: int, warmup: int, lr: float, min_lr: float, batch: int,
           clips: int, crops: int, variant: str = "tc_clip") -> ml_collections.ConfigDict:
    """ViT-B/16, 16 frames, 224 px, per-device batch 4 with accumulation, CLIP init from --config.init_clip."""
    c = base_config()
    c.name = name
    c.protocol = protocol
    c.model.variant = variant
    c.model.clip = "ViT-B/16"
    c.model.overrides = ml_collections.ConfigDict(dict(prompt_context_length=30))
    c.init_clip = ""  # give --config.init_clip=/path/to/ViT-B-16.pt (OpenAI CLIP); validated to exist
    c.data.name = "video_folder"
    c.data.data_dir = ""  # --config.data.data_dir=.../video_folder/<dataset>/1.0.0
    c.data.num_frames = 16
    c.data.input_size = 224
    c.epochs, c.warmup_epochs, c.lr, c.min_lr = epochs, warmup, lr, min_lr
    c.batch_size = batch
    c.per_device_batch_size = 4
    c.grad_accum_steps = 0  # batch // (4 * num_devices)
    c.compute_dtype = "bfloat16"
    c.eval.num_clips, c.eval.num_crops = clips, crops
    c.train_eval_clips, c.train_eval_crops = 1, 1
    c.eval_every_epochs = 1  # official save_freq (validation after every epoch; few-shot: 10)
    c.data.multi_clip_rule = "official"  # multi-view test clips drawn like training clips (SampleFrames multiview)
    c.eval.batch_size = 16
    c.log_every = 50
    c.checkpoint_every = 1000
    return c


def folder(group: str, split: str = "test", **kw) -> ml_collections.ConfigDict:
    """An eval target on a built video_folder dataset; set its data_dir (and split files) on the command line."""
    return eval_target(group, name="video_folder", data_dir="", test_split=split, **kw)


def official_target(group: str, split: str = "test") -> ml_collections.ConfigDict:
    """An eval target read through the official split files: ``test_list`` (e.g. val1.txt,
    ZS_split1_K600_eval.txt) selects the videos of the built ``split`` and ``class_names_file`` (e.g.
    hmdb_51_labels.csv, ZS_split1_K600.csv) names its classes; both required (``required_files``)."""
    t = folder(group, split, test_list="", class_names_file="")
    t.llm_descriptions = ""
    return t


def validation(target: str = "", **data_overrides) -> ml_collections.ConfigDict:
    """config.eval.validation: the eval target ``target`` itself, or config.data with ``data_overrides``."""
    v = eval_target("validation", **data_overrides)
    v.target = target
    v.llm_descriptions = ""
    return v
