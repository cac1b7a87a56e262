"""MediaPipe landscape segmenter as an online teacher with intermediate feature maps (training time only).

    sess, features = build_teacher_session()
    mask, *feats = sess.run(None, {"image": batch_nchw_rgb01})   # batch [N, 3, 144, 256] float32

`features` lists (output name, stride, channels) in the order of the extra outputs after `mask`. The model is
converted in memory from the TFLite original under ../shared (no file written); reading ../shared is fine here
because this is training tooling, never imported by the daemon.
"""

from __future__ import annotations

from tools.paths import DATA_ROOT
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

DEFAULT_TFLITE = DATA_ROOT / "teachers" / "selfie_segmentation_landscape.tflite"


@dataclass(frozen=True)
class TeacherFeature:
    tensor: str  # TFLite tensor name in the MediaPipe selfie graphs (same names in general and landscape)
    output: str  # ONNX output name
    stride: int  # input pixels per feature pixel
    channels: int


# Encoder skips (end of each resolution stage) and decoder blocks (after each refinement block, before the
# next upsampling). Shapes given for the landscape model, input 144x256.
TEACHER_FEATURES: tuple[TeacherFeature, ...] = (
    TeacherFeature("conv2d_4", "enc_s4", 4, 16),  # 36x64
    TeacherFeature("add__xeno_compat__1", "enc_s8", 8, 24),  # 18x32
    TeacherFeature("add_4__xeno_compat__1", "enc_s16", 16, 32),  # 9x16, bottleneck before the decoder
    TeacherFeature("multiply_6", "dec_s16", 16, 128),  # 9x16, decoder head (gated) before the first upsampling
    TeacherFeature("add_7__xeno_compat__1", "dec_s8", 8, 24),  # 18x32
    TeacherFeature("add_10__xeno_compat__1", "dec_s4", 4, 16),  # 36x64
    TeacherFeature("add_13__xeno_compat__1", "dec_s2", 2, 16),  # 72x128, before the final transposed conv
)


def build_teacher_session(
    path: str | Path = DEFAULT_TFLITE,
    features: tuple[TeacherFeature, ...] = TEACHER_FEATURES,
    num_threads: int = 1,
) -> tuple[ort.InferenceSession, list[tuple[str, int, int]]]:
    """Convert the TFLite model in memory with `features` exposed; return (session, [(name, stride, channels)]).

    The session has a dynamic batch dimension; inputs are NCHW RGB in [0, 1] at the model's size (144x256 for
    landscape). Outputs: `mask` [N,1,H,W] then one [N,C,H/stride,W/stride] per feature, in `features` order.
    """
    from .convert import convert  # needs `tflite` + `onnx` (dev deps), so imported only when building

    model = convert(path, expose={f.tensor: f.output for f in features}, dynamic_batch=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = num_threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, [(f.output, f.stride, f.channels) for f in features]
