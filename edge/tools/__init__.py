"""Field tools for technicians: replay, calibrate, bench (the ``edge-agent`` sub-commands beyond ``run``)."""
