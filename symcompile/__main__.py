"""`python -m symcompile ...` is the `symcompile` command."""

import sys

from symcompile.tools.cli import main

sys.exit(main())
