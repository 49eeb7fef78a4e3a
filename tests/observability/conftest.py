"""Engines with notifying services and a real loopback receiver, or wired to local fakes of
Google's token endpoint and FCM: the notification and push tests' own fixtures."""

from tests.notifications.conftest import make_engine, receiver  # noqa: F401 - fixtures used here too
from tests.push.conftest import google, key_pair, push_engine  # noqa: F401
