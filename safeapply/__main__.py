from safeapply.cli import main

raise SystemExit(main())
