"""Tiny TC-CLIP training config used by the trainer tests (subprocess runs)."""
from train_fixtures import tiny_config


def get_config():
    return tiny_config()
