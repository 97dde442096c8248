"""What the box offers besides its event stream: retained state topics and Home Assistant discovery.

Pure message builders (no MQTT client here): ``model`` is the box's state in typed form, ``state``
turns it into the retained state topics, ``discovery`` into Home Assistant discovery configs. The
agent's ``IntegrationDuties`` (edge/agent/duties.py) gathers the state and hands the messages to the
uplink, the only MQTT publisher.
"""
