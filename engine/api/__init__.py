"""The HTTP API: ORS-style sessions, admin, health (GMS callback API arrives with the service)."""
