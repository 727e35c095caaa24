"""A mosquitto on a free loopback port, its configuration and data in the caller's folder.

    broker = Mosquitto(workdir, users={"cam-1": "secret"}, acl="pattern write dctlink/%u/#",
                       tls=True, persistence=True)
    broker.start(); broker.url, broker.tls_url, broker.ca_file; broker.stop(); broker.start()
    with Mosquitto(workdir) as broker: ...   # started, and stopped on the way out

``start`` and ``stop`` may be called repeatedly: the port and the persistence folder stay, so
a restarted broker finds its sessions. ``kill`` is SIGKILL, for crash tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from harness.ports import free_port, tcp_open
from harness.waiting import stop_process, wait_ready


def find_mosquitto() -> Path | None:
    """mosquitto on PATH, or where Debian puts it (/usr/sbin is not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_config(
    port: int,
    workdir: Path,
    *,
    anonymous: bool = True,
    persistence: bool = False,
    log_file: Path | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The lines of a loopback-only broker's config; ``log_file`` None logs to stderr.

    ``extra`` lines come before the listener, where mosquitto reads global settings.
    """
    lines = [
        "per_listener_settings false",
        f"allow_anonymous {str(anonymous).lower()}",
        f"persistence {str(persistence).lower()}",
        f"persistence_location {workdir}/",
        f"log_dest file {log_file}" if log_file is not None else "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if os.geteuid() == 0:
        # Started as root, mosquitto switches to the user "mosquitto", who cannot use workdir.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return [*lines, *extra, f"listener {port} 127.0.0.1"]


class Mosquitto:
    """One mosquitto process, started and stopped by its own handle."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file: Path | None = None
        self.log_file = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        settings = list(extra)
        if users:
            passwords = workdir / "passwords"
            passwords.write_text("".join(f"{user}:{pw}\n" for user, pw in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
            settings.append(f"password_file {passwords}")
        if acl is not None:
            (workdir / "acl").write_text(acl + "\n")
            settings.append(f"acl_file {workdir / 'acl'}")
        lines = mosquitto_config(
            self.port,
            workdir,
            anonymous=not users,
            persistence=persistence,
            log_file=self.log_file,
            extra=tuple(settings),
        )
        if tls:
            lines += self._tls_listener()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def _tls_listener(self) -> list[str]:
        import trustme  # noqa: PLC0415  (a development dependency: only TLS tests need it)

        ca = trustme.CA()
        server = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = self.workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server.cert_chain_pems[0].write_to_path(str(self.workdir / "server.pem"))
        server.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        return [
            f"listener {self.tls_port} 127.0.0.1",
            f"cafile {self.ca_file}",
            f"certfile {self.workdir / 'server.pem'}",
            f"keyfile {self.workdir / 'server.key'}",
        ]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://localhost:{self.tls_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and return once its port accepts connections."""
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        errors = self.workdir / "mosquitto.stderr"  # what it says before its log file is open
        with errors.open("ab") as stderr:
            self._process = subprocess.Popen(
                [str(binary), "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            wait_ready(lambda: tcp_open(self.port), "mosquitto", timeout_s, self._process)
        except RuntimeError as error:
            said = [f.read_text(errors="replace") for f in (errors, self.log_file) if f.exists()]
            raise RuntimeError(f"{error}: {''.join(said)}") from None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (mosquitto saves its persistence file then) and wait."""
        if self._process is not None:
            stop_process(self._process, timeout_s)
        self._process = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, with whatever mosquitto had not saved lost."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._process = None
