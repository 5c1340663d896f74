from quantavirt.cli import main

raise SystemExit(main())
