"""gateway: the public REST API (register, login, upload, jobs, download) in front of the pipeline."""
from __future__ import annotations

import logging

from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import config, links, storage
from services.common import openapi as api_docs
from services.common.storage.errors import FileError, StorageError
from services.common.web import create_base_app, error_response

from . import (account, auth_client, broker, cors, http_errors, jwks, live_events, openapi, outbox, shared_links,
               storage_metrics, webapp)
from .routes import bp
from .uploads import tus

log = logging.getLogger(__name__)


def create_app():
    links.signing_key()  # a missing LINK_SECRET stops the start, not the first job view
    app = create_base_app("gateway", {"auth": auth_client.ping, "mongodb": storage.ping, "rabbitmq": broker.ready})
    hops = config.env_int("TRUSTED_PROXY_HOPS")
    if hops:
        # The client address (for auth's per-address limits) is the one our own proxies saw: the
        # hops-th X-Forwarded-For entry from the right. Entries a client wrote itself are further left.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)
    app.register_blueprint(bp)
    app.register_blueprint(tus.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(shared_links.bp)
    app.register_blueprint(webapp.bp)
    api_docs.register(app, openapi.SPEC)
    cors.register(app)
    http_errors.register(app)
    app.register_error_handler(StorageError, _storage_down)
    app.register_error_handler(FileError, _corrupt_file)
    live_events.configure()
    storage_metrics.register_once()
    jwks.warm()
    try:
        storage.prepare()
    except StorageError:
        log.warning("MongoDB unavailable at start; indexes will be created by the next start")
    if config.env_float("OUTBOX_INTERVAL_SECONDS") > 0:
        outbox.OutboxRelay(broker.publishers).start()
    return app


def _storage_down(exc):
    log.warning("storage unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
    return error_response(503, "storage_unavailable", "file storage is unavailable; try again shortly",
                          {"Retry-After": "5"})


def _corrupt_file(exc):
    log.error("stored file unreadable", extra={"error": str(exc)})
    return error_response(503, "storage_unavailable", "the stored file cannot be read right now",
                          {"Retry-After": "30"})  # readable again once storage recovers, if at all: no tight loop
