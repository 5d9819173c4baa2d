from nbagent.cli import main

raise SystemExit(main())
