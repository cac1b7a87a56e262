"""Development tooling that is not part of the installed product: evaluation scripts (``tools.evaluation``)
and the location of the training and evaluation data (``tools.paths``). Run from the repository root of a
development install, e.g. ``python -m tools.evaluation.edges``."""
