"""Print the README's settings table for a service's command-line options.

Usage: python scripts/settings_table.py edge_sender.cli:OPTIONS
       python scripts/settings_table.py cloud_receiver.cli:OPTIONS

The argument names a ``service_common.settings_cli.SettingsCli``: the same object that makes the
service's flags, so the table's environment variables, flags, defaults and descriptions are the
ones the code uses. The README tables are this script's output, and tests compare them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from service_common.settings_cli import Option, SettingsCli, default_text


def _default(option: Option) -> str:
    info = option.info
    if info.default == "":
        return '`""`'
    if info.default_factory is None and info.default is not None:
        return f"`{info.default}`"
    return default_text(info)  # none, host name, computed: words, not values


def settings_table(options: SettingsCli[Any]) -> str:
    header = ["| environment variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    rows = [
        f"| `{o.env}` | `{o.flag}` | {_default(o)} | {o.info.description} |"
        for o in options.options()
    ]
    return "\n".join(header + rows) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or ":" not in argv[0]:
        print(__doc__, file=sys.stderr)
        return 2
    module, name = argv[0].split(":")
    options = getattr(importlib.import_module(module), name)
    if not isinstance(options, SettingsCli):
        print(f"{argv[0]} is not a SettingsCli", file=sys.stderr)
        return 2
    sys.stdout.write(settings_table(options))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
