"""`python -m archiver` runs the command line."""

from .cli import main

raise SystemExit(main())
