"""Runnable host apps that use eventstore."""
