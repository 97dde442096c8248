"""Simulated field devices speaking the real byte protocols (LD2410 radar, NMEA GPS, BG96 modem),
a GPIO scenario driver for gpiozero's MockFactory, and (``firmware_sim.street``) the synthetic street.

The simulators share ``edge.hardware.codecs`` with the agent, so both sides frame bytes identically.
"""
