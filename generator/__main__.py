"""``python -m generator``: see generator/_generate.py."""

from generator._generate import main

raise SystemExit(main())
