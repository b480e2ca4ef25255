"""``python -m reve_remix``: the ``reve-remix`` command line."""

import sys

from reve_remix._cli import main

sys.exit(main())
