"""Per-frame image operations after inference (installed as ``vcam.postprocess``).

Pure functions and small stateful stages: no I/O, no threads, no config-file parsing.
"""
