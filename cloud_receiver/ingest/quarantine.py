"""Rejected messages kept for inspection: ``<name>.bin`` as received plus ``<name>.json``.

The folder is bounded by a file count, because a broken or hostile device can send garbage
as fast as the link allows; past the bound rejections are still logged and counted.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path


class Quarantine:
    def __init__(self, folder: Path, max_files: int) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self._lock = threading.Lock()
        self._count = sum(1 for _ in self.folder.glob("*.bin"))

    def keep(
        self,
        data: bytes,
        *,
        reason: str,
        reason_class: str,
        offset: int | None,
        topic: str | None,
        device_id: str | None,
    ) -> Path | None:
        """Write the message and its sidecar; None when the folder is full."""
        with self._lock:
            if self._count >= self.max_files:
                return None
            self._count += 1
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
        sidecar = {
            "reason": reason,
            "reason_class": reason_class,
            "offset": offset,
            "topic": topic,
            "device_id": device_id,
            "time": now.isoformat(),
            "bytes": len(data),
        }
        (self.folder / f"{name}.bin").write_bytes(data)
        (self.folder / f"{name}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
        return self.folder / f"{name}.bin"
