"""The TLS client context every outgoing connection of a process shares (SMTP, HTTPS webhooks and URL
imports): making one loads the system's CA certificates, ~35 ms of CPU, which every email, webhook
and import paid before (issue 24). A context is safe to share between threads; certificates and
host names are checked as `ssl.create_default_context` sets it up."""
from __future__ import annotations

import functools
import ssl


@functools.cache
def client_context() -> ssl.SSLContext:
    return ssl.create_default_context()
