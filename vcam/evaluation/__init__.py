"""Measurement scripts (run as ``python -m vcam.evaluation.<name>``). They may read ``../shared/data``; the
product never imports them at run time."""
