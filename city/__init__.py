"""The city side of an edge fleet, which the box never imports:

* a reference consumer an integrator starts from (``python -m city consume``: shared
  subscriptions, dedupe by ``event_id``, per-device ``seq`` gaps, ``ack_task`` back to the boxes,
  SQLite or PostgreSQL);
* FIWARE Smart Data Models and GBFS views of the box's records (``standards``, ``gbfs``);
* the closed loop in figures (``loops``, ``python -m city report`` / ``edge-agent report``).

It may import ``edge.events`` and ``edge.uplink``; ``edge`` never imports ``city`` (import-linter).
"""
