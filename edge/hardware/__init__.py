"""GPIO lines and serial devices: pins, codecs (pure bytes <-> messages), links, the manager, doctor."""
