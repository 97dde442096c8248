"""The uplink stage: durable outbox, MQTT sender (paho only in ``mqtt.py``), JSONL sink, commands."""
