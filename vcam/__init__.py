"""vcam: a real-time virtual camera with background blur/replacement."""

__version__ = "0.1.0"
