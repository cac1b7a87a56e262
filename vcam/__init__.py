"""vcam: a real-time virtual camera with background blur/replacement."""

import os

# ONNX Runtime 1.2x+ official wheels carry 1DS telemetry on Linux/macOS too: on first use it writes a device id
# under ~/.cache/Microsoft and a session file in TMPDIR and may upload process/session events. vcam promises
# that nothing leaves the machine unasked, so opt out before anything imports onnxruntime (the variable is read
# once per process). A user who exports ORT_DISABLE_TELEMETRY=0 keeps the runtime's default.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
