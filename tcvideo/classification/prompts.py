"""Class-name prompts of the video-classification task: clean-up, ``"{prefix} {name}."`` templates,
tokenisation, and LLM description files."""
from __future__ import annotations

import json
import re
from typing import Mapping, Sequence

import numpy as np

from tcvideo.clip.tokenizer import get_tokenizer


def clean_class_name(name: str, split_camel_case: bool = True) -> str:
    """'ApplyEyeMakeup' -> 'Apply Eye Makeup'; underscores become spaces (as the reference does)."""
    if split_camel_case:
        name = re.sub(r"([A-Z])", r" \1", name).strip()
    return name.replace("_", " ")


def build_prompts(class_names: Sequence[str], prefix: str = "a photo of a",
                  split_camel_case: bool = True, template: str = "{prefix} {name}.") -> list[str]:
    """``template`` with the clean name of every class: '{prefix} {name}.' (trained models), '{name}'
    (vanilla CLIP's zero-shot evaluation in the official code: the bare class name)."""
    return [template.format(prefix=prefix, name=clean_class_name(n, split_camel_case)) for n in class_names]


def tokenize_prompts(class_names: Sequence[str], context_length: int, prefix: str = "a photo of a",
                     split_camel_case: bool = True, truncate: bool = False,
                     template: str = "{prefix} {name}.") -> np.ndarray:
    """Class names -> token ids [n_cls, context_length] (int32)."""
    return get_tokenizer().tokenize(build_prompts(class_names, prefix, split_camel_case, template), context_length,
                                    truncate=truncate)


def load_llm_descriptions(path: str) -> list[str]:
    """A JSON file ``{id: "Name: description"}`` -> texts ordered by integer id.

    The text replaces the class name in the prompt template (as the official LLM runs do).
    """
    with open(path) as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a JSON object {{id: 'Name: description'}}")
    try:
        items = sorted((int(k), v) for k, v in raw.items())
    except ValueError as e:
        raise ValueError(f"{path}: keys must be integer class ids ({e})") from e
    ids = [i for i, _ in items]
    if ids != list(range(len(ids))):
        raise ValueError(f"{path}: class ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...")
    for i, v in items:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{path}: class {i} has no description text")
    return [v for _, v in items]
