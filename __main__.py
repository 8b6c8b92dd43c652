from swerepair.cli import main

raise SystemExit(main())
