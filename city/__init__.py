"""City-side tools over the box's records: FIWARE Smart Data Models and GBFS views (``standards``,
``gbfs``) and the closed loop in figures (``loops``, ``python -m city report``).

Pure functions over ``edge.event/1`` envelopes; the box's wire format stays compact and these
views are made upstream (by the reference consumer or a small exporter).
"""
