"""`python -m scoring.cli`: the same as the `scoring` console script."""

import sys

from scoring.cli import main

sys.exit(main())
