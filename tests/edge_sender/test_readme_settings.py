"""The README documents every edge setting exactly as the code defines it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_holds_the_generated_edge_settings_table() -> None:
    table = subprocess.run(
        [sys.executable, "scripts/settings_table.py", "edge_sender.config:EdgeSettings"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DCTLINK_EDGE__BROKER__URL" in table
    assert table in (REPO / "README.md").read_text(), (
        "README's edge settings table is stale: regenerate it with "
        "python scripts/settings_table.py edge_sender.config:EdgeSettings"
    )
