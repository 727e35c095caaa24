"""Local processes for tests, benchmarks and the demo: free ports, readiness, a mosquitto.

One harness instead of a copy in each: ``free_port`` and ``tcp_open`` (:mod:`harness.ports`),
``wait_until`` and ``wait_ready`` (:mod:`harness.waiting`), ``stop_process`` and
:class:`Mosquitto`, a broker on a free loopback port with its configuration in a folder of
the caller's (:mod:`harness.mosquitto`); ``peak_rss_mb``, ``rss_mb`` and ``cpu_seconds``
of a child (:mod:`harness.procfs`). Loopback only; nothing here is used by the services.
"""

from harness.mosquitto import Mosquitto, find_mosquitto, mosquitto_config
from harness.ports import free_port, tcp_open
from harness.procfs import cpu_seconds, peak_rss_mb, rss_mb
from harness.waiting import stop_process, wait_ready, wait_until

__all__ = [
    "Mosquitto",
    "cpu_seconds",
    "find_mosquitto",
    "free_port",
    "mosquitto_config",
    "peak_rss_mb",
    "rss_mb",
    "stop_process",
    "tcp_open",
    "wait_ready",
    "wait_until",
]
