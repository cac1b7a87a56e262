"""Framing: a virtual camera operator that picks, frame by frame, the window of the camera frame to show.

Pure and I/O-free: ``compose`` turns where the people are (``Head`` boxes, in source pixels) into the window a
camera operator would aim for, and ``step`` moves the previous window one time step ``dt`` towards it:

- composition: the eyes near the upper third, at least ``headroom`` above the top of the head, head and
  shoulders in view, everyone in view when several people are, and the face ``zoom`` of the output's height
  (when following) or the widest window that keeps the head (when only fitting another aspect ratio);
- motion: the aim moves only when the composition leaves a dead zone around it, the window follows the aim
  with a critically damped spring under a speed limit, and the zoom has its own slower spring and a wider dead
  zone, so small moves and detection noise leave the window exactly still and the zoom never pumps;
- limits: the window never gets so small that the output enlarges it more than ``max_upscale``, stays inside
  the source, and is padded (pillarbox / letterbox, see ``framing_stage``) only where the source is too narrow.

Windows are (cx, cy, h) in source pixels with the output's aspect ratio; ``window_rect`` makes the
integer rectangle (which may reach outside the source where it is padded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FramingSettings(BaseModel):
    """Auto-framing (the virtual camera operator)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "auto"] = Field("off", description="'auto': follow and frame the people on every camera "
                                         "(head and shoulders, zoom); 'off': only camera frames of another aspect "
                                         "ratio than the output are framed (output.fit = \"auto\")")
    zoom: float = Field(0.28, ge=0.1, le=0.5, description="face height as a fraction of the output height when "
                        "mode is 'auto' (0.28: head and shoulders; larger is closer)")
    headroom: float = Field(0.06, ge=0.0, le=0.3, description="least space above the top of the head, as a "
                            "fraction of the output height")
    max_face: float = Field(0.4, ge=0.2, le=0.8, description="the face is never taller than this fraction of the "
                            "output height: a closer crop is widened (and padded where the source is too narrow)")
    max_upscale: float = Field(1.5, ge=1.0, le=4.0, description="never crop in so far that the output enlarges "
                               "the camera's pixels more than this")
    faces: bool = Field(True, description="use the face detector (YuNet) as well as the person mask")
    response_s: float = Field(0.8, ge=0.05, le=5.0, description="time the window takes to cover 90% of a move "
                              "(critically damped spring)")
    zoom_response_s: float = Field(1.5, ge=0.05, le=10.0, description="the same for zooming in (slower than "
                                   "panning, so it never pumps; zooming out goes at response_s)")
    max_speed: float = Field(0.5, ge=0.05, le=5.0, description="fastest pan, in window heights per second")
    dead_zone: float = Field(0.06, ge=0.0, le=0.3, description="the window stays still while the composition "
                             "moves less than this fraction of the window height")
    zoom_dead_zone: float = Field(0.2, ge=0.05, le=0.5, description="the zoom goes in only once the wanted window "
                                  "is this fraction smaller (and out once it is 5% larger), so it never pumps")
    lost_after_s: float = Field(1.5, ge=0.1, le=30.0, description="nobody seen for this long: widen to the whole "
                                "camera frame")


Fit = Literal["auto", "crop", "pad", "stretch"]
WHOLE_SNAP = 0.9
SPRING_90 = 3.9  # a critically damped spring from rest covers 90% of a step by omega * t = 3.9
ZOOM_OUT_DEAD_ZONE = 0.05  # log size: widen at once when a face grows or someone joins, narrow only reluctantly


@dataclass(frozen=True)
class Head:
    """One person's face box (x, y, w, h) and eye line, in source pixels. The head reaches a third of the face
    box's height above it (hair, top of the skull)."""

    x: float
    y: float
    w: float
    h: float
    eye_y: float

    @property
    def top(self) -> float:
        return self.y - self.h / 3


@dataclass(frozen=True)
class Geometry:
    """Source and output sizes, and whether the window may reach outside the source (padding)."""

    src_w: int
    src_h: int
    out_w: int
    out_h: int
    pad: bool = True

    @property
    def aspect(self) -> float:
        return self.out_w / self.out_h

    @property
    def h_cover(self) -> float:
        """Height of the largest window inside the source."""
        return min(self.src_h, self.src_w / self.aspect)

    @property
    def h_contain(self) -> float:
        """Height of the smallest window that holds the whole source (padded on one axis)."""
        return max(self.src_h, self.src_w / self.aspect)

    def h_range(self, max_upscale: float) -> tuple[float, float]:
        """The window heights allowed: no more enlargement than ``max_upscale``, no padding unless ``pad``."""
        h_max = self.h_contain if self.pad else self.h_cover
        return min(self.out_h / max_upscale, self.h_cover), h_max

    def wide(self) -> tuple[float, float, float]:
        """The window that shows the whole source (padded) or, without padding, its centre."""
        h = self.h_contain if self.pad else self.h_cover
        return self.src_w / 2, self.src_h / 2, h

    def clamp(self, cx: float, cy: float, h: float, max_upscale: float) -> tuple[float, float, float]:
        """The nearest allowed window: size within ``h_range``, inside the source on each axis where it fits,
        centred on the source on an axis where it is wider than the source (padded evenly)."""
        lo, hi = self.h_range(max_upscale)
        h = min(max(h, lo), hi)
        w = h * self.aspect
        cx = _clamp_axis(cx, w, self.src_w)
        cy = _clamp_axis(cy, h, self.src_h)
        return cx, cy, h


def _clamp_axis(centre: float, extent: float, size: int) -> float:
    if extent >= size:
        return size / 2
    return min(max(centre, extent / 2), size - extent / 2)


def _even(v: float) -> int:
    return int(round(v / 2)) * 2


def _four(v: float) -> int:
    return max(4, int(round(v / 4)) * 4)


def window_rect(cx: float, cy: float, h: float, geom: Geometry) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) in source pixels: sizes multiples of 4 (YUV 4:2:0 needs even sizes; the super-resolution
    stage's 2x pixel shuffle needs multiples of 4), even offsets; inside the source on each axis where it is not
    wider than the source."""
    hi = _four(h)
    wi = _four(h * geom.aspect)
    if wi > geom.src_w and wi - geom.src_w <= 4:  # rounding alone must not create a thin pad
        wi = geom.src_w & ~3
    if hi > geom.src_h and hi - geom.src_h <= 4:
        hi = geom.src_h & ~3
    x0 = _even(cx - wi / 2)
    y0 = _even(cy - hi / 2)
    if wi <= geom.src_w:
        x0 = min(max(x0, 0), (geom.src_w - wi) & ~1)
    if hi <= geom.src_h:
        y0 = min(max(y0, 0), (geom.src_h - hi) & ~1)
    return x0, y0, wi, hi


def compose(heads: list[Head], geom: Geometry, settings: FramingSettings,
            follow: bool) -> tuple[float, float, float] | None:
    """The window (cx, cy, h) a camera operator would aim for, clamped to what is allowed; None without heads.

    ``follow`` (framing.mode = "auto"): the face is ``zoom`` of the window height. Otherwise (fitting another
    aspect ratio): the widest window inside the source, widened only as far as the head and shoulders, the
    headroom and ``max_face`` need."""
    if not heads:
        return None
    x0 = min(hd.x for hd in heads)
    x1 = max(hd.x + hd.w for hd in heads)
    top = min(hd.top for hd in heads)
    face_h = max(hd.h for hd in heads)
    face_w = max(hd.w for hd in heads)
    chin = max(hd.y + hd.h for hd in heads)
    eye_y = sum(hd.eye_y for hd in heads) / len(heads)
    wanted = face_h / settings.zoom if follow else geom.h_cover
    # Needs: head top to shoulders (three quarters of a face below the chin) below the headroom; everyone across
    # with a face width of room on each side; the face no taller than max_face.
    tall = (chin + 0.75 * face_h - top) / (1.0 - settings.headroom)
    wide = (x1 - x0 + 2.0 * face_w) / geom.aspect
    h = max(wanted, tall, wide, face_h / settings.max_face)
    h_max = geom.h_range(settings.max_upscale)[1]
    if h >= WHOLE_SNAP * h_max:
        h = h_max  # nearly everything: show everything, rather than hover a few per cent inside the edges
    cx = (x0 + x1) / 2
    cy = eye_y + h / 6  # eyes on the upper third line
    cy = min(cy, top - settings.headroom * h + h / 2)  # ... unless that leaves too little headroom
    return geom.clamp(cx, cy, h, settings.max_upscale)


@dataclass(frozen=True)
class CameraState:
    """The window now (cx, cy, h), its velocity (px/s, px/s, log-height/s), the aim it follows, and how many
    steps nobody has been seen."""

    cx: float
    cy: float
    h: float
    vx: float = 0.0
    vy: float = 0.0
    vz: float = 0.0
    aim: tuple[float, float, float] | None = None
    lost_steps: int = 0

    @property
    def window(self) -> tuple[float, float, float]:
        return self.cx, self.cy, self.h


def _spring(x: float, v: float, target: float, omega: float, dt: float, v_max: float) -> tuple[float, float]:
    """One exact step of a critically damped spring towards ``target``, then a speed limit."""
    e = x - target
    decay = math.exp(-omega * dt)
    k = (v + omega * e) * dt
    e_new = (e + k) * decay
    v_new = (v - omega * k) * decay
    if abs(e_new - e) > v_max * dt:  # speed limit: no more than v_max * dt this step
        e_new = e + math.copysign(v_max * dt, e_new - e)
        v_new = math.copysign(min(abs(v_new), v_max), v_new)
    return target + e_new, v_new


def head_bounds(heads: list[Head]) -> tuple[float, float, float, float] | None:
    """(x0, top, x1, bottom) around every whole head (face box plus a third of its height above it)."""
    if not heads:
        return None
    return (min(hd.x for hd in heads), min(hd.top for hd in heads), max(hd.x + hd.w for hd in heads),
            max(hd.y + hd.h for hd in heads))


def _contains(window: tuple[float, float, float], box: tuple[float, float, float, float], geom: Geometry,
              headroom: float = 0.0) -> bool:
    """``box`` inside ``window``, at least ``headroom`` (fraction of the window height) below its top."""
    cx, cy, h = window
    w = h * geom.aspect
    top = cy - h / 2 + headroom * h
    return (cx - w / 2 <= box[0] and box[2] <= cx + w / 2) and (top <= box[1] and box[3] <= cy + h / 2)


def _update_aim(aim: tuple[float, float, float] | None, target: tuple[float, float, float],
                settings: FramingSettings) -> tuple[float, float, float]:
    """Move the aim to the target only where the target left the dead zone (position and zoom separately;
    the zoom's dead zone is lopsided: out soon, in late)."""
    if aim is None:
        return target
    ax, ay, ah = aim
    tx, ty, th = target
    if abs(tx - ax) > settings.dead_zone * ah or abs(ty - ay) > settings.dead_zone * ah:
        ax, ay = tx, ty
    grow = math.log(th / ah)
    if grow > ZOOM_OUT_DEAD_ZONE or -grow > settings.zoom_dead_zone:
        ah = th
    return ax, ay, ah


def step(prev: CameraState | None, target: tuple[float, float, float] | None, geom: Geometry,
         settings: FramingSettings, dt: float, keep: tuple[float, float, float, float] | None = None
         ) -> CameraState:
    """The window one time step ``dt`` (s) after ``prev`` while the composition asks for ``target`` (None:
    nobody seen). The first window with somebody in view is the composition itself (a cut, not a zoom).
    ``keep`` (``head_bounds``): a box the aim must hold; the dead zone never lets a head out of the aim.
    Within a pixel of the aim and nearly stopped, the window arrives exactly, so it then stands still."""
    if prev is None or (prev.aim is None and target is not None):
        start = target or geom.wide()
        return CameraState(*start, aim=target)
    lost = 0 if target is not None else prev.lost_steps + 1
    if target is None:
        target = geom.wide() if lost * dt >= settings.lost_after_s else prev.aim
    if target is None:
        return replace(prev, lost_steps=lost, vx=0.0, vy=0.0, vz=0.0)
    aim = _update_aim(prev.aim, target, settings)
    margin = settings.headroom / 2  # half the headroom may go before the aim follows the head
    if keep is not None and not _contains(aim, keep, geom, margin) and _contains(target, keep, geom, margin):
        aim = target
    omega = SPRING_90 / settings.response_s
    v_max = settings.max_speed * prev.h
    cx, vx = _spring(prev.cx, prev.vx, aim[0], omega, dt, v_max)
    cy, vy = _spring(prev.cy, prev.vy, aim[1], omega, dt, v_max)
    # Zooming out (a face grew too big, someone joined) goes at the panning pace; zooming in, slower.
    zoom_time = settings.response_s if aim[2] > prev.h else settings.zoom_response_s
    z, vz = _spring(math.log(prev.h), prev.vz, math.log(aim[2]), SPRING_90 / zoom_time, dt, settings.max_speed)
    state = CameraState(cx, cy, math.exp(z), vx, vy, vz, aim, lost)
    return _settle(state, geom, settings)


def _settle(state: CameraState, geom: Geometry, settings: FramingSettings) -> CameraState:
    """Arrive exactly (a still aim gives a window that does not move at all) and keep inside the limits."""
    ax, ay, ah = state.aim
    cx, cy, h, vx, vy, vz = state.cx, state.cy, state.h, state.vx, state.vy, state.vz
    if abs(cx - ax) < 1.0 and abs(vx) < 5.0:
        cx, vx = ax, 0.0
    if abs(cy - ay) < 1.0 and abs(vy) < 5.0:
        cy, vy = ay, 0.0
    if abs(h - ah) < 1.0 and abs(vz) < 5e-3:
        h, vz = ah, 0.0
    ccx, ccy, ch = geom.clamp(cx, cy, h, settings.max_upscale)
    return replace(state, cx=ccx, cy=ccy, h=ch, vx=vx if ccx == cx else 0.0, vy=vy if ccy == cy else 0.0,
                   vz=vz if ch == h else 0.0)
