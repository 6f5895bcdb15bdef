"""The ``nsdk`` command line: sign in once, then call every operation of the API from a shell.

Installed with the ``cli`` extra (``pip install 'nsdk[cli]'``): click, and filelock for the
per-profile ``FileTokenStore``. ``main`` is the console script and ``python -m nsdk``; without
click it says how to install it and exits 2 instead of failing with a traceback.

Exit codes (also in ``nsdk --help`` and docs/cli.md):

====  ===========================================================================================
0     success
1     the API answered an error, or the network failed (the message carries the request_id)
2     usage: a wrong option or argument, no password source, the ``cli`` extra missing
3     the local session cannot be used: the session file is corrupt, open to others, or busy
4     authentication required: not signed in, the session expired, or wrong credentials
130   interrupted (Ctrl-C)
====  ===========================================================================================

Nothing heavy is imported here: ``nsdk --help`` and ``nsdk status`` start fast, and each
``nsdk api`` command imports its generated operation module only when it runs.
"""

from __future__ import annotations

import sys

#: What ``main`` prints when click is missing.
INSTALL_HINT = (
    "nsdk: the command line needs the 'cli' extra, which is not installed here.\n"
    "Install it with:  pip install 'nsdk[cli]'\n"
)


def main(argv: list[str] | None = None) -> None:
    """Run the ``nsdk`` command line and exit with its status (see the module's exit codes).

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
    """
    try:
        from ._app import run
    except ImportError as exc:
        if exc.name != "click":  # a missing extra, not a bug: say how to install it
            raise
        sys.stderr.write(INSTALL_HINT)
        raise SystemExit(2) from None
    raise SystemExit(run(argv))


__all__ = ["INSTALL_HINT", "main"]
