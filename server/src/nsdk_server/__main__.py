"""Entry point: `python -m nsdk_server`."""

import sys

from .cli import main

sys.exit(main())
