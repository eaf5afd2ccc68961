"""Fault injection against a private stack: kill -9, broker/database/SMTP outages, SIGTERM, poison messages."""
