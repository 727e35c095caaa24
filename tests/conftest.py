"""Shared fixtures: a real mosquitto on a free port, configured in a temporary folder.

``mosquitto`` is one plain broker for the whole session (anonymous, no TLS). Tests that stop the
broker, or need users, an ACL or TLS, ask ``mosquitto_factory`` for their own:

    broker = mosquitto_factory(users={"cam-1": "secret"}, acl="pattern write dctlink/%u/#",
                               tls=True, persistence=True)
    broker.url, broker.tls_url, broker.ca_file, broker.stop(), broker.start()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

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
