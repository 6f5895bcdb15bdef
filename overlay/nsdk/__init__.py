"""nsdk: the Python SDK for the NSDK authentication API."""

__all__: list[str] = []
