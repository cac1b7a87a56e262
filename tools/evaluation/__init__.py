"""Measurement scripts (run as ``python -m tools.evaluation.<name>``). They may read ``../shared/data``; the
product never imports them at run time."""
