"""The README documents every setting of both services exactly as the code defines it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("options", "first_row"),
    [
        ("edge_sender.cli:OPTIONS", "| `DCTLINK_EDGE__DEVICE_ID` | `--device-id` | host name |"),
        ("cloud_receiver.cli:OPTIONS", "| `DCTLINK_RECEIVER__TOPIC_PREFIX` | `--topic-prefix` |"),
    ],
)
def test_readme_holds_the_generated_settings_table(options: str, first_row: str) -> None:
    table = subprocess.run(
        [sys.executable, "scripts/settings_table.py", options],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table.splitlines()[2].startswith(first_row)
    assert table in (REPO / "README.md").read_text(), (
        f"README's settings table for {options} is stale: regenerate it with"
        f" python scripts/settings_table.py {options}"
    )
