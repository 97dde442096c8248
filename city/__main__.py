from city.cli import main

raise SystemExit(main())
