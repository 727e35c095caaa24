"""The HTTP API (REST v1, events, health, gallery) around the ingest pipeline and the store."""

from cloud_receiver.api.app import create_app

__all__ = ["create_app"]
