"""Home Assistant: every DCTLink camera appears by MQTT discovery, with its newest picture.

:mod:`.discovery` builds the retained discovery messages and the topics (pure);
:mod:`.bridge` publishes them and, for every stored image, the picture and the byte savings,
through the receiver's own MQTT connection.
"""

from cloud_receiver.homeassistant.bridge import HomeAssistantBridge

__all__ = ["HomeAssistantBridge"]
