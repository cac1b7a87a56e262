"""Learned models (installed as ``vcam.models``): architectures, training, export and the shipped ONNX files.

Training code imports PyTorch; nothing under this package that the daemon imports at run time may do so.
"""
