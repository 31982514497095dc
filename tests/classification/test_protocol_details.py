"""Recipe details that change TC-CLIP's numbers: base-to-novel harmonic mean of the seeds' means, vanilla
CLIP's bare class-name prompt, LLM descriptions per eval target, the recipe configs naming their files."""
import json

import numpy as np
import pytest

import train_fixtures as tf_
from tcvideo.classification import aggregate, config as cls_config
from tcvideo.classification.config import eval_target
from tcvideo.classification.prompts import build_prompts
from tcvideo.core.config import ConfigError, config_module


def _run(tmp_path, name, base, novel):
    d = tmp_path / name
    d.mkdir()
    summary = {"base": {"top1_mean": base}, "novel": {"top1_mean": novel}}
    (d / "eval_results.json").write_text(json.dumps({"fine_tuned": {"summary": summary}}))
    return str(d)


def test_base2novel_harmonic_mean_of_the_seed_means(tmp_path, capsys):
    runs = [_run(tmp_path, f"s{i}", b, n) for i, (b, n) in enumerate([(90.0, 10.0), (70.0, 50.0), (80.0, 60.0)])]
    assert aggregate.main(runs) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_allclose(s["base"]["mean"], 80.0)
    np.testing.assert_allclose(s["novel"]["std"], np.std([10.0, 50.0, 60.0]))  # population std, as main.py
    np.testing.assert_allclose(s["harmonic_mean"], 2 * 80 * 40 / 120)  # HM of the means (53.33) ...
    per_seed = np.mean([2 * b * n / (b + n) for b, n in [(90, 10), (70, 50), (80, 60)]])
    assert abs(s["harmonic_mean"] - per_seed) > 1.0  # ... not the mean of per-seed HMs (50.0)
    (tmp_path / "s0" / "eval_results.json").write_text(json.dumps({"fine_tuned": {"summary": {}}}))
    assert aggregate.main(runs) == 2
    assert "fine_tuned.summary.base" in capsys.readouterr().err


def test_vanilla_clip_prompts_the_bare_class_name():
    assert build_prompts(["ApplyEyeMakeup"], "a photo of a") == ["a photo of a Apply Eye Makeup."]
    assert build_prompts(["ApplyEyeMakeup", "brush hair"], "a photo of a", template="{name}") == \
        ["Apply Eye Makeup", "brush hair"]
    vanilla = config_module(__file__, "../../configs/tc_clip/baselines/vanilla_clip.py").get_config()
    assert vanilla.prompt_template == "{name}"


def _descs(path, n):
    path.write_text(json.dumps({str(i): f"class {i}: a description" for i in range(n)}))
    return str(path)


def _validate(cfg):
    from tcvideo.tc_clip.family import model_config  # noqa: F401 - registers the family
    from tcvideo.classification.task import get_family
    return cls_config.validate(cfg, get_family(cfg.model.family).model_config)


def test_llm_descriptions_per_eval_target_with_count_check(tmp_path):
    cfg = tf_.tiny_config("vifi_clip")
    cfg.llm_descriptions = _descs(tmp_path / "train.json", 4)
    cfg.eval.datasets.other = eval_target("other", **{"synthetic": {"classes": ("growing", "shrinking", "moving up")}})
    with pytest.raises(ConfigError, match=r"config\.eval\.datasets\.other\.llm_descriptions: empty"):
        _validate(cfg)  # other classes than training: the training file would silently be used
    cfg.eval.datasets.other.llm_descriptions = _descs(tmp_path / "other.json", 4)
    with pytest.raises(ConfigError, match=r"config\.eval\.datasets\.other\.llm_descriptions: .*4 descriptions for the 3"):
        _validate(cfg)
    cfg.eval.datasets.other.llm_descriptions = _descs(tmp_path / "other.json", 3)
    _validate(cfg)


@pytest.mark.parametrize("recipe,field", [
    ("few_shot.py", "data.data_dir"),
    ("base2novel.py", "data.data_dir"),
    ("zero_shot_k400.py", "data.data_dir"),
    ("fully_supervised_k400.py", "data.data_dir"),
])
def test_recipes_name_their_files_and_stop_without_them(tmp_path, recipe, field):
    c = config_module(__file__, f"../../configs/tc_clip/{recipe}").get_config()
    with pytest.raises(ConfigError, match=rf"config\.{field}: empty"):
        cls_config.check_required_files(c)
    # With the data folder given, the next missing official file is named.
    c.data.data_dir = str(tmp_path)
    with pytest.raises(ConfigError, match=r"config\.data\.(train_list|class_names_file): empty"):
        cls_config.check_required_files(c)
    for f in c.required_files:
        assert f.endswith(("data_dir", "_list", "class_names_file", "llm_descriptions"))


def test_float16_evaluation_of_a_checkpoint_computes_in_float16():
    """eval.compute_dtype='float16' (released checkpoints evaluated as on V100s) builds the evaluation model in
    float16: its logits are close to the float32 ones but not equal, and its activations are float16."""
    import jax
    import jax.numpy as jnp
    from tcvideo.core.registry import get_task
    task = get_task(tf_.tiny_config(**{"eval.compute_dtype": "float16"}))
    assert task.eval_dtype == jnp.float16 and task.compute_dtype == jnp.float32
    params = task.init_params()
    video = jax.random.uniform(jax.random.PRNGKey(0), (2, 4, 32, 32, 3))
    ids = jnp.asarray(task.ids)
    f32 = task.model.apply({"params": params}, video, ids)["logits"]
    f16, inter = task.eval_model.apply({"params": params}, video.astype(jnp.float16), ids,
                                       capture_intermediates=True, mutable=["intermediates"])
    f16 = f16["logits"]
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(inter) if hasattr(x, "dtype")}
    assert jnp.dtype(jnp.float16) in dtypes, dtypes
    err = float(jnp.max(jnp.abs(f16.astype(jnp.float32) - f32)))
    assert 0 < err < 0.05 * float(jnp.max(jnp.abs(f32))), err
