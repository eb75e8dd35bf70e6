"""Reusable support code for the test suite (fake external services)."""
