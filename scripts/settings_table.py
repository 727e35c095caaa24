"""Print the README's settings table for a pydantic-settings class.

Usage: python scripts/settings_table.py edge_sender.config:EdgeSettings

The README tables are this script's output, and a test compares them, so the documented
environment variables, defaults and descriptions cannot drift from the code.
"""

from __future__ import annotations

import importlib
import sys

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        name = getattr(info.default_factory, "__name__", "")
        return "host name" if name == "gethostname" else "computed"
    return "none" if info.default is None else f"`{info.default}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        env = prefix + name.upper()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, env + "__")
        else:
            rows.append(f"| `{env}` | {_default(info)} | {info.description} |")
    return rows


def settings_table(settings: type[BaseSettings]) -> str:
    prefix = str(settings.model_config.get("env_prefix", ""))
    header = ["| environment variable | default | meaning |", "| --- | --- | --- |"]
    return "\n".join(header + _rows(settings, prefix)) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or ":" not in argv[0]:
        print(__doc__, file=sys.stderr)
        return 2
    module, name = argv[0].split(":")
    settings = getattr(importlib.import_module(module), name)
    sys.stdout.write(settings_table(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
