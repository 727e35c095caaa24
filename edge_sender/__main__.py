"""``python -m edge_sender`` is the ``edge-sender`` command."""

from edge_sender.cli import run

run()
