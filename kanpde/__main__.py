"""``python -m kanpde``: the ``kanpde`` command."""

import sys

from kanpde.cli import main

sys.exit(main())
