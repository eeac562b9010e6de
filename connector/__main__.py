from connector.cli.router import main

raise SystemExit(main())
