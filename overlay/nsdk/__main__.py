"""``python -m nsdk``: the ``nsdk`` command line (the ``cli`` extra)."""

from nsdk.cli import main

if __name__ == "__main__":  # not when a tool imports every module (doctest collection)
    main()
