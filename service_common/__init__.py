"""Plumbing both services share: logging, settings flags, broker settings and the paho setup.

``edge_sender`` and ``cloud_receiver`` never import each other (docs/architecture.md section 1), and
``shared`` stays the network-free codec, so what both services need around the codec lives
here. It depends only on what the edge install brings: pydantic, pydantic-settings, paho-mqtt.

- ``logs``: the one logging setup (JSON lines in containers, text on a terminal)
- ``settings_cli``: command-line flags and their help, generated from a settings class
- ``broker``: the broker settings both services extend, and MQTT topic-level rules
- ``mqtt``: a paho client with the broker's credentials and TLS applied
"""
