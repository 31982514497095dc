"""The core knows no system: nothing under tcvideo/core imports a system package or data_pipelines, and the
trainer's base config carries no system's fields."""
import ast
import os
import subprocess
import sys

import train_fixtures as tf_

CORE = os.path.join(tf_.REPO, "tcvideo", "core")
SYSTEMS = ("clip", "classification", "tc_clip", "victr", "ov_oad", "fs_cal")


def _imported_modules(path: str) -> set:
    """Every module an ``import`` / ``from ... import`` in the file names (also inside functions)."""
    mods = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)
    return mods


def test_core_sources_import_no_system_package():
    offending = {}
    for name in sorted(os.listdir(CORE)):
        if name.endswith(".py"):
            bad = sorted(m for m in _imported_modules(os.path.join(CORE, name))
                         if m.split(".")[0] == "data_pipelines"
                         or (m.startswith("tcvideo.") and m.split(".")[1] in SYSTEMS))
            if bad:
                offending[name] = bad
    assert not offending, offending
    # the scan sees imports inside functions (where the old layout hid its TC-CLIP dependencies)
    assert "tcvideo.core.config.ConfigError" in _imported_modules(os.path.join(CORE, "registry.py"))


def test_importing_the_core_loads_no_system_module():
    code = ("import sys; import tcvideo.core.train, tcvideo.core.registry, tcvideo.core.config, tcvideo.core.task, "
            "tcvideo.core.checkpoints, tcvideo.core.model_dir; "
            "print(sorted(m for m in sys.modules if m.startswith('data_pipelines') or "
            "(m.startswith('tcvideo.') and m.split('.')[1] in %r)))" % (SYSTEMS,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tf_.REPO, env=tf_.env(1),
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_trainer_base_config_has_no_system_fields():
    from tcvideo.classification.config import base_config as cls_base
    from tcvideo.core.config import base_config
    core = base_config()
    for field in ("model", "data", "protocol", "prompt_prefix", "llm_descriptions", "wise_ft_weight",
                  "train_eval_clips"):
        assert field not in core, field
    assert "datasets" not in core.eval and "num_clips" not in core.eval
    cls = cls_base()
    assert {"model", "data", "protocol", "wise_ft_weight"} <= set(cls.keys())
    assert cls.lr_mults.prompt == 10.0 and "prompt" not in core.lr_mults


def test_systems_are_found_by_discovery():
    from tcvideo.classification.task import FAMILIES
    from tcvideo.core.registry import task_names
    assert {"video_classification", "ov_oad", "fs_cal"} <= set(task_names())
    assert {"tc_clip", "victr"} <= set(FAMILIES.names())
