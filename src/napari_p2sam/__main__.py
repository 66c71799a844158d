"""``python -m napari_p2sam``: the ``napari-p2sam`` command (segment, eval, models)."""

import sys

from .cli import main

sys.exit(main())
