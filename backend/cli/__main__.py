"""`python -m backend.cli`: the `motiongpt3` command."""

import sys

from .main import main

sys.exit(main())
