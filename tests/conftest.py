"""Test configuration: 4 simulated CPU devices (set before JAX initialises) and import paths."""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))


# The longest tests first (measured: the resume runs ~4 min, the demo ~2.5 min, notebooks, the
# OV-OAD / FS-CAL / VicTR training runs ~1 min each), so that `-n 2` does not end on one of them
# while the other worker idles.
_SLOW_FIRST = ("test_train_resume.py", "test_train_demo.py", "test_colab_notebooks.py", "test_ov_oad_train.py",
               "test_fs_cal_train.py", "test_victr.py", "test_train_unit.py", "test_ov_oad_losses.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid.split("::")[0].rsplit("/", 1)[-1], len(rank)))
