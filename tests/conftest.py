"""Shared fixtures: a real mosquitto on a free port, configured in a temporary folder.

``mosquitto`` is one plain broker for the whole session (anonymous, no TLS). Tests that stop the
broker, or need users, an ACL or TLS, ask ``mosquitto_factory`` for their own:

    broker = mosquitto_factory(users={"cam-1": "secret"}, acl="pattern write dctlink/%u/#",
                               tls=True, persistence=True)
    broker.url, broker.tls_url, broker.ca_file, broker.stop(), broker.start()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from threadpoolctl import threadpool_info  # type: ignore[import-untyped]  # untyped

from harness import Mosquitto


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


class MosquittoFactory(Protocol):
    def __call__(
        self,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
    ) -> Mosquitto: ...


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    brokers: list[Mosquitto] = []

    def make(
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path_factory.mktemp("mosquitto"),
            users=users,
            acl=acl,
            tls=tls,
            persistence=persistence,
        )
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def blas_threads_in_recovery(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """The threads of each BLAS library at every Recovery.run, keyed by the library's file.

    Only BLAS pools count: threadpoolctl also lists OpenMP (torch's libgomp), in the order the
    libraries were loaded, so the first pool it lists is not always a BLAS one. Keyed by file so
    that a failure names the library that escaped the limit.
    """
    from cloud_receiver.recovery import Recovery  # noqa: PLC0415  # only the tests that ask load it

    seen: dict[str, set[int]] = {}
    run = Recovery.run

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        for info in threadpool_info():
            if info["user_api"] == "blas":
                seen.setdefault(info["filepath"], set()).add(info["num_threads"])
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Recovery, "run", spy)
    return seen
