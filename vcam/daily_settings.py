"""Settings of the everyday services around the daemon (``[daemon]`` section of the config).

Kept free of other vcam imports so that ``vcam.config`` can include it without an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DaemonSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    control: bool = Field(True, description="listen for `vcam status/toggle/set/...` on the per-user control socket")
    watch_config: bool = Field(True, description="reload the config file within a second of an edit")
    on_demand: bool = Field(True, description="release the physical camera while no app reads the virtual "
                                              "camera (Linux, v4l2loopback)")
    attach_after_s: float = Field(0.25, ge=0.0, le=5.0, description="a reader must hold the device this long "
                                  "before the camera opens (ignores apps that only poll devices)")
    release_after_s: float = Field(5.0, ge=0.0, le=600.0, description="release the camera this long after the "
                                   "last reader closes the device")
    idle_fps: float = Field(2.0, gt=0.0, le=30.0, description="frame rate of the still frame sent while no app "
                            "reads the virtual camera")
    pause_image: str | None = Field(None, description="picture shown while paused (default: a dark 'paused' "
                                    "frame)")


def daemon_settings(config: object) -> DaemonSettings:
    """The config's ``[daemon]`` section, or the defaults where the config has none."""
    value = getattr(config, "daemon", None)
    return value if isinstance(value, DaemonSettings) else DaemonSettings()
