"""nsdk's code generator: openapi.yaml -> generated/nsdk_api (and the spec-driven docs).

Run ``python -m generator`` (or ``nox -s generate``); ``python -m generator --check`` is the drift
check. See ``generator/_generate.py``.
"""
