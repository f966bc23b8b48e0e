"""`python -m symcompile ...` is the `symcompile` command."""

import sys

from .cli import main

sys.exit(main())
