"""The local demo (see ``python -m demo --help``)."""
