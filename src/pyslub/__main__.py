"""``python -m pyslub``: the ``pyslub`` command."""

import sys

from pyslub.cli import main

sys.exit(main())
