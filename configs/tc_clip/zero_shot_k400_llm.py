"""Zero-shot with LLM class descriptions (context length 77), official labels/labels_froster/ files:
--config.llm_descriptions=kinetics_400_llm_labels.json (training and the K400 validation) and
--config.eval.datasets.<target>.llm_descriptions=<its file> for every target (hmdb_51_llm_labels.json,
ucf_101_llm_labels.json, ZS_splitS_K600_llm.json); each count is checked against its target's classes."""
from tcvideo.core.config import config_module

zero_shot_k400 = config_module(__file__, "zero_shot_k400.py")


def get_config():
    c = zero_shot_k400.get_config()
    c.name = "tc_clip_zero_shot_k400_llm"
    c.model.overrides.prompt_context_length = 77
    c.llm_descriptions = ""
    for t in c.eval.datasets.values():
        t.llm_descriptions = ""
    c.required_files = tuple(c.required_files) + ("llm_descriptions",) + tuple(
        f"eval.datasets.{n}.llm_descriptions" for n in c.eval.datasets)
    return c
