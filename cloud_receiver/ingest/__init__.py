"""Ingest: the MQTT subscriber, chunk reassembly, dedupe, and the pipeline into the store."""

from cloud_receiver.ingest.events import Event, EventHub
from cloud_receiver.ingest.pipeline import Outcome, Pipeline, Result
from cloud_receiver.ingest.quarantine import Quarantine
from cloud_receiver.ingest.service import Ingest

__all__ = ["Event", "EventHub", "Ingest", "Outcome", "Pipeline", "Quarantine", "Result"]
