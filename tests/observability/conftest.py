"""An engine with notifying services and a real loopback receiver (the notification tests' own)."""

from tests.notifications.conftest import make_engine, receiver  # noqa: F401 - fixtures used here too
