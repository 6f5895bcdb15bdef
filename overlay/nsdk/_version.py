"""nsdk's version: the ``[project] version`` of pyproject.toml, kept in step at every build.

hatchling's version build hook rewrites the string below when a wheel or an install is built
(``[tool.hatch.build.hooks.version]``), and a test checks it against pyproject.toml and the
installed metadata, so reading it costs a constant, not ``importlib.metadata`` (about 7 ms,
paid by the first client for its ``User-Agent``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
