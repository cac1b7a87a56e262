"""vcam's own portrait segmenter: encoder-decoder-refine RepVGG network, training, export (PyTorch at training only)."""
