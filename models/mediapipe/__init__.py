"""MediaPipe selfie segmentation (Apache-2.0) as vcam's baseline segmenter.

Shipped: `selfie_segmentation_landscape.onnx` (144x256) and `selfie_segmentation.onnx` (256x256), each with its
card. Build tooling (not imported at run time): `convert` (TFLite -> ONNX), `measure`, `build`, and
`teacher_features` (online teacher with intermediate feature maps for distillation).
"""
