"""The project as a user installs it: a built wheel in a fresh venv, away from the checkout.

Editable installs and the test run's working directory both put the source tree on the path,
which hides package data left out of the wheel. Here the wheel is built from a copy of the
sources, installed with ``--no-deps`` into a new venv (the third-party dependencies come from
this test run's environment through a path entry, so no download is needed), and every check
runs from an empty directory: the receiver must load the shipped network and the sender must
find its sample images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from (pyproject.toml's package list and its readme).
SOURCES = (
    "pyproject.toml",
    "README.md",
    "shared",
    "service_common",
    "edge_sender",
    "cloud_receiver",
)

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": "", "PIP_NO_INPUT": "1"},
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the dctlink wheel; returns its ``bin`` folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source, cwd=work)
    (wheel,) = dist.glob("dctlink-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=work)
    # Dependencies from this environment, after the venv's own site-packages. A plain path line
    # does not run that folder's .pth files, so the editable checkout stays out of sight.
    purelib = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work
        ).strip()
    )
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_receiver_loads_the_shipped_model(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, cloud_receiver\n"
        "from cloud_receiver.recovery import DEFAULT_MODEL_PATH, Recovery\n"
        "recovery = Recovery()\n"
        "print(json.dumps({'package': cloud_receiver.__file__, 'model': str(DEFAULT_MODEL_PATH),"
        " 'version': recovery.model_version, 'detail': recovery.network_detail}))\n"
    )
    found = json.loads(_run(installed / "python", "-c", probe, cwd=tmp_path))
    venv = installed.parent
    assert Path(found["package"]).is_relative_to(venv), found
    assert Path(found["model"]).is_relative_to(venv), found
    assert found["version"] == "dctlink-residual-v3", found["detail"]


def test_installed_commands_run_end_to_end(installed: Path, tmp_path: Path) -> None:
    """The sender encodes its packaged samples; the receiver decodes them through every stage."""
    samples = json.loads(
        _run(
            installed / "python",
            "-c",
            "import json; from edge_sender.sources.synthetic import SAMPLES;"
            " print(json.dumps(sorted(str(p) for p in SAMPLES.glob('*.png'))))",
            cwd=tmp_path,
        )
    )
    assert len(samples) == 4
    assert all(Path(p).is_relative_to(installed.parent) for p in samples)
    payload = tmp_path / "frame.dctl"
    encode = (
        "import sys; from pathlib import Path; from PIL import Image\n"
        "from shared.codec import Profile, encode\n"
        "Path(sys.argv[2]).write_bytes(encode(Image.open(sys.argv[1]), Profile.lowpass()))\n"
    )
    _run(installed / "python", "-c", encode, samples[0], payload, cwd=tmp_path)
    out = tmp_path / "stages"
    _run(installed / "cloud-receiver", "decode", payload, "--out", out, cwd=tmp_path)
    assert {p.name for p in out.glob("*.png")} >= {"received.png", "classical.png", "enhanced.png"}
