from firmware_sim.street.cli import main

raise SystemExit(main())
