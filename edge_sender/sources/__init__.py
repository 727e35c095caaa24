"""Where frames come from: files, a watched folder, an HTTP snapshot URL, a camera, samples.

Every source is an iterator of :class:`Frame`; the long-running ones take a
``threading.Event`` and end when it is set.
"""

from edge_sender.sources.base import Frame, SourceError, frame_from_bytes, frame_from_path
from edge_sender.sources.camera import camera_source
from edge_sender.sources.files import file_source
from edge_sender.sources.http import http_source
from edge_sender.sources.synthetic import synthetic_source
from edge_sender.sources.watch import watch_source

__all__ = [
    "Frame",
    "SourceError",
    "camera_source",
    "file_source",
    "frame_from_bytes",
    "frame_from_path",
    "http_source",
    "synthetic_source",
    "watch_source",
]
