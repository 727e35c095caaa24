"""The sender that runs on the board: sources, durable spool, MQTT publisher and CLI."""

from edge_sender.config import EdgeSettings
from edge_sender.publisher import MqttPublisher, PublisherError
from edge_sender.sender import Sender
from edge_sender.spool import Spool, SpoolError

__all__ = ["EdgeSettings", "MqttPublisher", "PublisherError", "Sender", "Spool", "SpoolError"]
