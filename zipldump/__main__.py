from zipldump.cli import main

raise SystemExit(main())
