"""``python -m kanpde``: the ``kanpde`` command."""

import sys

from kanpde.cli.main import main

sys.exit(main())
