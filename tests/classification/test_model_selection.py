"""Model selection as the official TC-CLIP code: a validation target separate from the test targets, evaluated
during training at the official epochs; best/ is the step with the best validation score and the final
evaluation (and its table) is of that step, not the last one."""
import json

import jax
import ml_collections
import numpy as np

import train_fixtures as tf_
from tcvideo.classification import task as cls_task
from tcvideo.classification.config import eval_target
from tcvideo.core import train


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def test_official_validation_epochs():
    c = ml_collections.ConfigDict({"eval_every_epochs": 10})
    steps = train.eval_schedule(c, steps_per_epoch=3, total_steps=150)  # 50 epochs (few-shot)
    assert sorted(steps) == [3 * (e + 1) for e in (0, 10, 20, 30, 40, 49)]
    c.eval_every_epochs = 1  # zero-shot / base-to-novel / fully supervised: every epoch, the last included
    assert sorted(train.eval_schedule(c, steps_per_epoch=4, total_steps=12)) == [4, 8, 12]
    c.eval_every_epochs = 0
    assert train.eval_schedule(c, steps_per_epoch=4, total_steps=12) is None


def test_final_evaluation_is_of_the_best_validation_step(tmp_path, monkeypatch, capsys):
    cfg = tf_.tiny_config("vifi_clip", **{"total_steps": 3, "eval_every_epochs": 1, "checkpoint_every": 3,
                                          "async_checkpointing": False, "data.synthetic.videos_per_class": 2})
    cfg.eval.final = True
    cfg.eval.validation = eval_target("validation", test_split="val")
    cfg.eval.datasets.test_a = eval_target("a")
    scores = iter([10.0, 50.0, 20.0])  # scripted validation top-1 at steps 1, 2, 3 (1 step an epoch): best = 2
    seen = {"during": [], "final": []}
    original = cls_task.VideoClassificationTask.evaluate

    def evaluate(self, params, params_sharding, mesh, *, during_training=False):
        out = original(self, params, params_sharding, mesh, during_training=during_training)
        seen["during" if during_training else "final"].append(_np(params))
        seen.setdefault("targets", []).append((during_training, list(out["results"])))
        if during_training:
            out["primary"] = next(scores)
        return out

    monkeypatch.setattr(cls_task.VideoClassificationTask, "evaluate", evaluate)
    train.train_and_evaluate(cfg, str(tmp_path))
    with open(tmp_path / "eval_results.json") as f:
        res = json.load(f)
    assert res["evaluated_checkpoint"]["source"] == "best"
    assert res["evaluated_checkpoint"]["step"] == 2
    assert res["evaluated_checkpoint"]["validation_primary"] == 50.0
    assert len(seen["during"]) == 3
    # In training only the validation target is evaluated; the final table is of the test targets.
    assert seen["targets"] == [(True, ["validation"])] * 3 + [(False, ["test_a"])]
    best_leaves = jax.tree_util.tree_leaves(seen["during"][1])
    final_leaves = jax.tree_util.tree_leaves(seen["final"][0])
    for a, b in zip(best_leaves, final_leaves):
        np.testing.assert_array_equal(a, b)
    last_leaves = jax.tree_util.tree_leaves(seen["during"][2])
    assert any(not np.array_equal(a, b) for a, b in zip(last_leaves, final_leaves))
    assert "(checkpoint: best, step 2)" in capsys.readouterr().out
