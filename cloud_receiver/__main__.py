"""``python -m cloud_receiver`` is the ``cloud-receiver`` command."""

from cloud_receiver.cli import run

run()
