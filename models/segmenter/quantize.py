"""Static int8 quantisation of a shipped segmenter (ONNX Runtime), calibrated on training photos.

    python -m models.segmenter.quantize --src models/segmenter/vcam_seg_lite.onnx --out /tmp/vcam_seg_lite_int8.onnx

Calibration frames: ``--n`` training photos of ``portrait-seg`` (never ``val.txt``) as whole photos and
head-and-shoulders crops, preprocessed like the daemon (INTER_AREA resize, RGB, /255). Evaluate the result with
``python -m tools.evaluation.segmenter --model lite-int8=<out>``; it is shipped only if faster at one thread and
within 0.3 IoU points.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from .data import DATA_ROOT, head_and_shoulders_box, read_ids

log = logging.getLogger(__name__)


class PhotoReader(CalibrationDataReader):
    def __init__(self, size: tuple[int, int], n: int) -> None:
        val = set(read_ids(DATA_ROOT / "portrait-seg" / "val.txt"))
        paths = [p for p in sorted((DATA_ROOT / "portrait-seg" / "images").glob("*.jpg")) if p.stem not in val]
        picked = [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]
        h, w = size
        self.inputs = []
        for p in picked:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(DATA_ROOT / "portrait-seg" / "masks" / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
            views = [img]
            box = head_and_shoulders_box(mask)
            if box is not None:
                x0, y0, bw, bh = (int(round(v)) for v in box)
                crop = img[max(0, y0): y0 + bh, max(0, x0): x0 + bw]
                if crop.size:
                    views.append(crop)
            for v in views:
                small = cv2.cvtColor(cv2.resize(v, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                self.inputs.append({"image": small.astype(np.float32).transpose(2, 0, 1)[None] / 255.0})
        self.it = iter(self.inputs)

    def get_next(self) -> dict | None:
        return next(self.it, None)


def quantize(src: Path, out: Path, n: int = 64, fmt: str = "qdq") -> Path:
    import onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    size = (dims[2].dim_value, dims[3].dim_value)
    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre))
    quantize_static(str(pre), str(out), PhotoReader(size, n),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    pre.unlink(missing_ok=True)
    log.info("wrote %s", out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=64, help="calibration photos")
    p.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quantize(args.src, args.out, args.n, args.format)


if __name__ == "__main__":
    main()
