"""FS-CAL data: temporal annotations (ActivityNet 1.3, THUMOS'14), per-snippet feature sources
(feature files or synthetic) and few-shot common-action episodes. See the module docstrings."""
