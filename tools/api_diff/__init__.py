"""``nox -s api_diff``: what a change does to nsdk's users, before it ships.

Compares the spec (``openapi.yaml``) and the public Python API of ``nsdk`` and ``nsdk_api`` at a
base revision (``--base REF``; default: the latest version tag, else the merge base with main)
with the working tree, and prints a report: the spec changes classified for clients
(``_spec_diff``: api-smart-diff plus the generator's operation facts), griffe's breaking changes
of the Python API (``_python_diff``), the release check (``_release``: a breaking change needs a
major version bump, minor below 1.0, and a changelog entry) and a changelog entry to paste.
"""
