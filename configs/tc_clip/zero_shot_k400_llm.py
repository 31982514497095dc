"""Zero-shot with LLM class descriptions (context length 77): --config.llm_descriptions=k400.json and
--config.eval.datasets.<target>.llm_descriptions=<dataset>.json for every target."""
from tcvideo.core.config import config_module

zero_shot_k400 = config_module(__file__, "zero_shot_k400.py")


def get_config():
    c = zero_shot_k400.get_config()
    c.name = "tc_clip_zero_shot_k400_llm"
    c.model.overrides.prompt_context_length = 77
    c.llm_descriptions = ""
    for t in c.eval.datasets.values():
        t.llm_descriptions = ""
    return c
