"""Tests of the callback service."""
