"""`python -m ggraph ...`: the same as the `ggraph` command."""
import sys

from .runtime.apps.cli import main

sys.exit(main())
