"""The segmenter runtime: an ONNX Runtime session that follows vcam's segmenter contract.

Contract: input ``image`` float32 [1,3,H,W] RGB in [0,1]; output ``mask`` float32 [1,1,H,W] person probability.
The whole frame is resized to the model input (no letterbox: 16:9 into 144x256 is nearly exact).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from .registry import ModelCard, find_model, list_models
from .still_scene import StillSceneGate

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """A model file is missing, corrupt or does not follow its contract."""


def make_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An ORT CPU session with ``threads`` intra-op threads and spinning disabled (spinning threads double
    latency when the other core is busy)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    from .file_checks import MAX_MODEL_BYTES, FileCheckError, read_regular_file

    try:  # read here, without blocking: a FIFO or a huge file put in the model's place is refused
        model = read_regular_file(path, MAX_MODEL_BYTES)
    except FileCheckError as exc:
        raise ModelError(f"cannot load model: {exc}") from None
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several exception types for unreadable/corrupt files
        raise ModelError(f"cannot load model {path}: {exc}") from exc


class Segmenter:
    """Frame (BGR uint8, any size) -> person mask (float32 [h, w] at the model's resolution)."""

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        self.card = card
        if not card.path.is_file():
            raise ModelError(f"model file {card.path} is missing")
        self.session = make_session(card.path, threads)
        self.height, self.width = self._check_contract()
        self._input = np.zeros((1, 3, self.height, self.width), np.float32)
        self._small = np.zeros((self.height, self.width, 3), np.uint8)
        self._halves: list[np.ndarray] = []  # preallocated pyramid levels for the current frame size
        self._levels_used = 0  # how many of them the last frame filled

    def _check_contract(self) -> tuple[int, int]:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names = ([i.name for i in inputs], [o.name for o in outputs])
        if [i.name for i in inputs] != ["image"] or "mask" not in names[1]:
            raise ModelError(f"{self.card.path} does not follow the segmenter contract "
                             f"(needs input 'image' and output 'mask', has {names})")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3:
            raise ModelError(f"{self.card.path}: input 'image' must be [1,3,H,W], is {shape}")
        h, w = shape[2], shape[3]
        if not (isinstance(h, int) and isinstance(w, int)):
            if self.card.input_size is None:
                raise ModelError(f"{self.card.path}: dynamic input size and no input_size in its card")
            h, w = self.card.input_size
        return int(h), int(w)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.height, self.width

    def _downscale(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> model input size: exact 2x box halvings while at least twice too big (OpenCV's fast integer
        INTER_AREA path), then one bilinear step of less than 2x. A single INTER_AREA resize 720p -> 256x144 costs
        ~1.0 ms here, this ~0.3 ms, and the masks differ by 0.002 on average."""
        h, w = frame.shape[:2]
        level = 0
        while h >= 2 * self.height and w >= 2 * self.width:
            h, w = h // 2, w // 2
            if level == len(self._halves) or self._halves[level].shape[:2] != (h, w):
                del self._halves[level:]
                self._halves.append(np.empty((h, w, 3), np.uint8))
            frame = cv2.resize(frame[: 2 * h, : 2 * w], (w, h), dst=self._halves[level], interpolation=cv2.INTER_AREA)
            level += 1
        self._levels_used = level
        return cv2.resize(frame, (self.width, self.height), dst=self._small, interpolation=cv2.INTER_LINEAR)

    def segment(self, frame_bgr: np.ndarray,
                gate: StillSceneGate | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The person mask (float32 [h, w] at the model's resolution) and the frame halved 1, 2, ... times
        (BGR uint8, 2x2 box averages) as computed on the way to the model's input size: later stages may reuse
        them for that same frame. Both are buffers overwritten by the next call. With a ``gate``, the model is
        skipped while its input picture is still (the gate's last mask is returned, read-only)."""
        self._downscale(frame_bgr)
        levels = self._halves[: self._levels_used]
        if gate is not None and (reused := gate.reusable_mask(self._small)) is not None:
            return reused, levels
        # HWC BGR uint8 -> CHW RGB float32 in [0,1], written straight into the preallocated input tensor.
        np.multiply(self._small.transpose(2, 0, 1)[::-1], np.float32(1 / 255), out=self._input[0])
        (mask,) = self.session.run(["mask"], {"image": self._input})
        if gate is not None:
            gate.remember(mask[0, 0])
        return mask[0, 0], levels

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The person mask alone (see :meth:`segment`)."""
        return self.segment(frame_bgr)[0]


def latency_ms(segmenter: Segmenter, frame_bgr: np.ndarray, runs: int = 30,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """Median ms of ``segmenter.process`` on ``frame_bgr`` by ``clock`` (after two warm-up runs)."""
    for _ in range(2):
        segmenter.process(frame_bgr)
    times = []
    for _ in range(runs):
        t0 = clock()
        segmenter.process(frame_bgr)
        times.append((clock() - t0) * 1e3)
    return float(np.median(times))


# Compute tiers of our own segmenter, best quality first. ``auto`` probes them on this machine and takes the best
# one whose CPU time per frame (with its input built from a 720p frame) fits the budget: under a fifth of a 30 fps
# frame period at one thread, leaving the rest for decoding, compositing and the call app itself. On the 2-core
# test VM the full tier probes at 3.5-5.7 ms depending on other load, MediaPipe landscape at 2-3 ms.
TIER_ORDER = ("full", "lite")
PROBE_BUDGET_MS = 6.0


def _probe_frame() -> np.ndarray:
    """A deterministic textured 720p frame (probing needs no camera and no asset)."""
    y, x = np.mgrid[0:720, 0:1280]
    return np.dstack([(x * 7 + y * 3) % 256, (x * 2 + y * 5) % 256, (x ^ y) % 256]).astype(np.uint8)


def pick_tier(threads: int = 1, budget_ms: float = PROBE_BUDGET_MS,
              measure: Callable[[ModelCard], float] | None = None) -> tuple[ModelCard | None, str]:
    """Probe the installed tiers that rank above the best model without a tier (best first), then that model
    (MediaPipe, the fallback), and return the first whose latency fits ``budget_ms``, with the reason; none fits:
    the fastest.

    Tiers compete only when a tiered model is the highest-priority segmenter; otherwise (None, why).
    ``measure(card)`` gives a model's ms per frame (default: ``latency_ms`` on a 720p frame, CPU ms at one
    thread)."""
    ranked = [c for c in list_models("segmentation") if c.verify() is None]
    if ranked and ranked[0].tier not in TIER_ORDER:
        return None, f"'{ranked[0].name}' ranks first (priority {ranked[0].priority}); tiers not probed"
    # A tier competes only while it ranks above the best model without a tier (a card's priority above
    # MediaPipe's says the tier met its targets against it); that model is the last candidate, the fallback.
    fallback = [c for c in ranked if c.tier not in TIER_ORDER][:1]
    above = ranked[: ranked.index(fallback[0])] if fallback else ranked
    tiered = sorted((c for c in above if c.tier in TIER_ORDER), key=lambda c: TIER_ORDER.index(c.tier))
    candidates = tiered + fallback
    if measure is None:
        frame = _probe_frame()
        # At one thread the model runs on this thread: its CPU time is the cost, and other processes' load does
        # not push the pick down the way wall time would.
        clock = time.thread_time if threads == 1 else time.perf_counter
        measure = lambda card: latency_ms(Segmenter(card, threads), frame, runs=15, clock=clock)  # noqa: E731
    timings: list[tuple[ModelCard, float]] = []
    for card in candidates:
        try:
            timings.append((card, measure(card)))
        except ModelError as exc:
            log.error("segmenter %s unusable: %s", card.name, exc)
            continue
        probed = ", ".join(f"{c.tier if c.tier in TIER_ORDER else c.name} {t:.2f} ms" for c, t in timings)
        if timings[-1][1] <= budget_ms:
            return card, f"probe: {probed}; '{card.name}' is the best within {budget_ms} ms"
    if not timings:
        return None, "no tier loaded"
    card, _ = min(timings, key=lambda ct: ct[1])
    return card, f"probe: {probed}; none within {budget_ms} ms, so the fastest, '{card.name}'"


def load_segmenter(choice: str = "auto", threads: int = 1) -> Segmenter:
    """Load the segmenter named by ``choice`` (card name, tier or .onnx path). ``auto`` probes our tiers and
    picks one (see ``pick_tier``), else the highest-priority model that loads; a broken model falls back to the
    next one with a logged error, never a crash."""
    if choice != "auto":
        card = find_model(choice, "segmentation")
        problem = card.verify()  # a named model is hash-checked against its card like a probed one
        if problem:
            raise ModelError(problem)
        return Segmenter(card, threads)
    card, reason = pick_tier(threads)
    log.info("segmenter tier: %s", reason)
    if card is not None:
        return Segmenter(card, threads)
    errors = []
    for card in list_models("segmentation"):
        problem = card.verify()
        if problem:
            errors.append(problem)
            log.error("skipping segmenter %s: %s", card.name, problem)
            continue
        try:
            return Segmenter(card, threads)
        except ModelError as exc:
            errors.append(str(exc))
            log.error("skipping segmenter %s: %s", card.name, exc)
    raise ModelError("no usable segmenter installed: " + ("; ".join(errors) or "none found under vcam/models"))
