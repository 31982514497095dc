"""Data for tcvideo: ``video/`` (decoding, annotations, TFDS builders, sampling, augmentation, splits,
the training / evaluation pipeline of video classification) and ``temporal/`` (untrimmed videos as
per-frame features with temporal segments: THUMOS'14 / TVSeries / ActivityNet / caption readers,
feature files, windows and episodes, shared by OV-OAD and FS-CAL)."""
