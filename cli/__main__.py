"""`python -m cli ...` is `emissions ...`."""

import sys

from cli.main import main

sys.exit(main())
