"""In-memory source over the synthetic videos (no files), registered as 'synthetic'."""
from __future__ import annotations

import numpy as np

from data_pipelines.video import register_dataset
from data_pipelines.video import synthetic


class SyntheticSplit:
    is_jpeg = False

    def __init__(self, videos: np.ndarray, labels: np.ndarray, split: str = "train"):
        self.videos = videos  # uint8 [N, T, H, W, 3]
        self.labels = labels  # int32 [N]
        # Nominal file names, so that split files can select synthetic examples like built ones.
        self.paths = [f"class{int(c):02d}/{split}_{i:05d}.avi" for i, c in enumerate(labels)]

    def __len__(self) -> int:
        return len(self.labels)

    def num_frames(self, i: int) -> int:
        return int(self.videos.shape[1])

    def get_frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        return self.videos[int(i)][np.asarray(indices)]


class SyntheticDataset:
    def __init__(self, classes=None, num_classes: int = 0, videos_per_class: int = 16,
                 test_videos_per_class: int = 4, num_frames: int = 16, resolution=(64, 64), seed: int = 0):
        self.class_names = synthetic.class_list(num_classes or None, classes)
        self._per_class = {"train": videos_per_class, "test": test_videos_per_class,
                           "val": test_videos_per_class, "validation": test_videos_per_class}
        self._args = dict(num_frames=num_frames, height=int(resolution[0]), width=int(resolution[1]), seed=seed)
        self.num_examples = {"train": len(self.class_names) * videos_per_class,
                             "test": len(self.class_names) * test_videos_per_class}

    def split(self, name: str) -> SyntheticSplit:
        if name not in self._per_class:
            raise ValueError(f"synthetic splits are {list(self._per_class)}, got {name!r}")
        videos, labels = synthetic.generate(self.class_names, name, self._per_class[name], **self._args)
        return SyntheticSplit(videos, labels, name)


@register_dataset("synthetic")
def _make_synthetic(config=None, **kwargs) -> SyntheticDataset:
    if config is not None:
        s = config.synthetic
        kwargs = dict(classes=list(s.classes) or None, num_classes=s.num_classes, videos_per_class=s.videos_per_class,
                      test_videos_per_class=s.test_videos_per_class, num_frames=s.num_frames,
                      resolution=tuple(s.resolution), seed=s.seed, **kwargs)
    return SyntheticDataset(**kwargs)
