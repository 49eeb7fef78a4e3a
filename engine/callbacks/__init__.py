"""Callback service: GMS-style callbacks, their lifecycle, scheduling and business hours."""
