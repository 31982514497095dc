"""Checkpoint converters: OpenAI CLIP, Hugging Face CLIP and official TC-CLIP -> tcvideo model dirs.

Kept apart from the model code (as open_clip does): models never read foreign files.
"""
