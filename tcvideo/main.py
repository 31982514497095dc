"""Entry point: ``python -m tcvideo.main --config=configs/<file>.py --workdir=DIR [--config.field=value]``.

Without ``--config`` it runs the built-in default, ``configs/demo.py``.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DEFAULT_CONFIG = os.path.join(REPO_CONFIGS, "demo.py")

config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Python config file with get_config().",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and the resolved config.")
flags.DEFINE_string("checkpoint", None, "eval: a training workdir (its latest checkpoint) or a tcvideo model "
                    "dir to evaluate instead of --workdir's own checkpoints.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "What to run.")
FLAGS = flags.FLAGS


def main(argv) -> None:
    del argv
    logging.set_verbosity(logging.INFO)
    config = FLAGS.config
    workdir = FLAGS.workdir or os.path.join("/tmp", "tcvideo_" + config.get("name", "run"))
    mode = config.get("mode", FLAGS.mode) if FLAGS.mode == "train" else FLAGS.mode
    from tcvideo.core import train
    try:
        if mode == "eval":
            train.evaluate_workdir(config, workdir, checkpoint=FLAGS.checkpoint)
        else:
            train.train_and_evaluate(config, workdir)
    except train.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    app.run(main, argv=sys.argv)


if __name__ == "__main__":
    run()
