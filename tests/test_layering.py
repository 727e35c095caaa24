"""The import rules of docs/architecture.md section 1, checked over the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import (docs/architecture.md, section 1)
FORBIDDEN = {
    "shared": {
        "service_common",
        "edge_sender",
        "cloud_receiver",
        "models",
        "paho",
        "fastapi",
        "onnxruntime",
        "torch",
        "httpx",
        "socket",
        "sqlite3",
        "boto3",
        "psycopg",
        "harness",
    },
    "service_common": {
        "harness",
        "edge_sender",
        "cloud_receiver",
        "models",
        "fastapi",
        "onnxruntime",
        "torch",
    },
    "edge_sender": {
        "harness",
        "cloud_receiver",
        "models",
        "fastapi",
        "onnxruntime",
        "torch",
        "scipy",
        "uvicorn",
    },
    "cloud_receiver": {"edge_sender", "models", "torch", "harness"},
    # Test and benchmark plumbing: the standard library only, so every consumer may import it.
    "harness": {"shared", "service_common", "edge_sender", "cloud_receiver", "models", "bench"},
}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_what_its_layer_allows(package: str) -> None:
    breaches = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_modules(path) & FORBIDDEN[package])
    ]
    assert not breaches, "\n".join(breaches)


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f() -> None:\n    import torch.nn\n    from fastapi import x\n")
    assert imported_modules(module) == {"torch", "fastapi"}
