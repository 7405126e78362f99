"""``python -m skal.label COMMAND ...``: the ``skal label`` commands on their own."""

import sys

from skal.label.cli import main

sys.exit(main())
