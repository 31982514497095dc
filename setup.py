"""tcvideo: CLIP-based video understanding in JAX/Flax (TC-CLIP, OV-OAD, VicTR, FS-CAL)."""
from setuptools import find_packages, setup

setup(
    name="tcvideo",
    version="0.1.0",
    description="CLIP-based video understanding in JAX/Flax: TC-CLIP, OV-OAD, VicTR, FS-CAL.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tcvideo", "tcvideo.*", "data_pipelines", "data_pipelines.*"]),
    package_data={"tcvideo": ["clip/tokenizer/*.txt.gz", "clip/tokenizer/LICENSE*", "*/README.md"]},
    install_requires=[
        "numpy>=1.26",
        "jax>=0.4.35,<0.11",
        "flax>=0.10,<0.13",
        "optax>=0.2.3,<0.3",
        "orbax-checkpoint>=0.9,<0.12",
        "ml-collections>=0.1.1,<2",
        "clu>=0.0.12,<0.1",
        "tensorboard>=2.15,<3",
        "tensorflow-cpu>=2.16,<3",
        "tensorflow-datasets>=4.9.4,<5",
        "av>=12,<20",
        "ftfy>=6.1,<7",
        "regex>=2023.0",
        "safetensors>=0.4,<1",
        "pillow>=10",
        "matplotlib>=3.7",
        "importlib_resources>=6",  # tensorflow-datasets imports it without declaring it
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "torch==2.13.0",  # the CPU build; nothing here may pull a CUDA torch
            "transformers>=4.45,<6",
            "nbmake>=1.5",
            "scikit-learn>=1.3",
            "apache-beam>=2.55",  # the Beam build path is tested with the DirectRunner
        ],
        "cuda12": ["jax[cuda12]>=0.4.35,<0.11"],
        "beam": ["apache-beam>=2.55"],
    },
    entry_points={"console_scripts": ["tcvideo=tcvideo.cli:main"]},
)
