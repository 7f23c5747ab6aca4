from picloud.cli import main

raise SystemExit(main())
