"""`python -m kbroker` is the `kbroker` console script."""

from kbroker.cli import main

raise SystemExit(main())
