"""``python -m exportjobs``: the same as the ``exportjobs`` command."""

import sys

from exportjobs.cli import main

sys.exit(main())
