"""Entry point: ``python -m tcvideo.main --config=configs/<file>.py --workdir=DIR [--config.field=value]``.

``-v`` (absl's ``--verbosity=0``) shows the libraries' INFO logs and full tracebacks on screen; without it they
go only to ``WORKDIR/log.txt``.

Without ``--config`` it runs the built-in default, ``configs/demo.py``; except ``--mode=eval
--checkpoint=TRAINING_WORKDIR``, which evaluates with that workdir's own resolved config (its config.json,
plus any ``--config.field=value``). An explicit ``--config`` must then match the workdir's task and model family.
"""
from __future__ import annotations

import os
import sys


from tcvideo.core.console import asked_verbose  # noqa: E402 - light: no jax / TF import

# TF's C++ INFO lines are printed at import, before flags are parsed: decide from argv.
if not asked_verbose(sys.argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DEFAULT_CONFIG = os.path.join(REPO_CONFIGS, "demo.py")

config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Python config file with get_config().",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and the resolved config.")
flags.DEFINE_string("checkpoint", None, "eval: a training workdir (its latest checkpoint) or a tcvideo model "
                    "dir to evaluate instead of --workdir's own checkpoints.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "What to run.")
FLAGS = flags.FLAGS


def _consume_run_flags() -> tuple[bool, str]:
    """-> (whether --config was given, --checkpoint) of this run.

    absl keeps flag state across in-process runs (``tcvideo.cli.main`` called twice in a notebook or a
    test): reset both so that one run's --config / --checkpoint does not look given to the next.
    """
    explicit, checkpoint = FLAGS["config"].present > 0, FLAGS.checkpoint
    FLAGS["config"].present = 0
    FLAGS["checkpoint"].unparse()
    return explicit, checkpoint


def main(argv) -> None:
    del argv
    from tcvideo.core import console
    # absl turns an absent --verbosity into 0 (INFO) once flags are parsed: only a given one counts
    console.configure(FLAGS.verbosity if FLAGS["verbosity"].present else -1)
    explicit_config, checkpoint = _consume_run_flags()
    config = FLAGS.config
    mode = config.get("mode", FLAGS.mode) if FLAGS.mode == "train" else FLAGS.mode
    from tcvideo.core import train
    overrides = None
    if mode == "eval" and checkpoint and not explicit_config and train.is_training_workdir(checkpoint):
        # evaluate_workdir reads the workdir's own config.json; the default (demo) config is not used
        config, overrides = None, config_flags.get_override_values(FLAGS["config"])
    name = config.get("name", "run") if config is not None else os.path.basename(os.path.normpath(checkpoint))
    workdir = FLAGS.workdir or os.path.join("/tmp", "tcvideo_" + name)
    from tcvideo.core import compare
    try:
        if mode == "eval":
            if config is not None and compare.wants_comparison(config):
                config = compare.run_configs(config)[next(iter(config.compare))]
            train.evaluate_workdir(config, workdir, checkpoint=checkpoint, overrides=overrides)
        elif compare.wants_comparison(config):
            compare.train_and_compare(config, workdir)
        else:
            train.train_and_evaluate(config, workdir)
    except train.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except train.RunError as e:  # a fault met while running: one line, what was kept is in the message
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - one line on screen, the traceback in workdir/log.txt
        console.report_exception(e)
        sys.exit(1)


def run() -> None:
    from tcvideo.core.console import normalize_argv
    app.run(main, argv=normalize_argv(sys.argv))


if __name__ == "__main__":
    run()
