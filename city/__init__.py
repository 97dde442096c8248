"""The city side of the fleet: a reference consumer (``python -m city consume``) that an integrator
starts from. It may import ``edge.events`` and ``edge.uplink``; ``edge`` never imports ``city``."""
