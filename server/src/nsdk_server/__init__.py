"""Reference server for the NSDK authentication API (openapi.yaml).

Run it with `python -m nsdk_server`; from tests use `nsdk_server.testing.run_server` or the pytest
fixtures of `nsdk_server.pytest_plugin`. Importing this package does nothing but define names.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
