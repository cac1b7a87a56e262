"""Shared building blocks for vcam's learned models (training-time, PyTorch)."""
