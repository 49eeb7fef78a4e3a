"""The HTTP API: the GMS callback API (``gms``), notifications and their subscriptions, push and
CALLBACK_SETTINGS, ORS-style sessions (``ors``), the Basic HTTP inbound URL, admin, API keys and
health; authentication (``auth``), body parsing (``body``), JSON errors (``errors``) and the typed
application keys (``appkeys``). Handlers reach the engine's parts through ``RUNTIME`` only."""
