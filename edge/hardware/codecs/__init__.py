"""Pure byte codecs shared by the agent and ``firmware_sim``: no I/O, no clocks, no vendor libraries."""
