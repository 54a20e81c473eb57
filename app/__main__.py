"""`python -m app` runs the same command line as `prod-access`."""

from app.cli import main

raise SystemExit(main())
