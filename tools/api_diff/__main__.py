"""``python -m tools.api_diff [--base REF] [--repo DIR]``: see tools/api_diff/__init__.py."""

from tools.api_diff._cli import main

raise SystemExit(main())
