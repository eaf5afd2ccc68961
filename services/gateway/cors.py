"""CORS: pages on the origins in CORS_ALLOWED_ORIGINS may call the API from a browser (Uppy, a
single-page app on its own host). Empty (the default), the gateway sends no CORS header at all and
browsers keep every other site's page out, as before.

Written here rather than with flask-cors: the whole policy is an exact set of origins and two fixed
header lists, and each rule below is one line that a test pins down. No credentials are allowed: the
API authenticates with an Authorization header the page sets itself (a Bearer token, a Basic login),
never a cookie, so a browser has nothing of the user's to send on its own.

An Origin is compared exactly with the configured ones as browsers write them (config.origin): `null`
(sandboxed frames, file: pages), an origin with a path, other letter case, or several origins in one
header match nothing and get no CORS header, so the browser refuses the page its answer.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, request

from services.common import config

# What a page may send beyond the CORS-safelisted headers: the credentials, JSON bodies, uploads
# (Idempotency-Key, the tus protocol's headers), conditional and partial downloads.
ALLOW_HEADERS = ("Authorization, Content-Type, Idempotency-Key, If-None-Match, Range, Last-Event-ID, "
                 "Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, Upload-Defer-Length, "
                 "Upload-Concat")
# What a page may read beyond the CORS-safelisted response headers: where an upload or job is, the tus
# state, the job a finished upload made, limits and when to retry, validators and links, file names.
EXPOSE_HEADERS = ("Location, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, "
                  "Tus-Max-Size, Tus-Extension, Job-Id, Idempotent-Replayed, RateLimit, RateLimit-Policy, "
                  "Retry-After, ETag, Link, Content-Disposition, Content-Range, Accept-Ranges")
# How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours): short, so that a
# removed origin is refused again soon.
MAX_AGE_SECONDS = 600


def register(app: Flask) -> None:
    """Answer preflights and mark answers for the allowed origins; nothing at all when there are none."""
    allowed = config.allowed_origins()
    if not allowed:
        return

    def preflight() -> Response | None:
        """A browser asking before a request it may not send on its own: answered here, before any
        authentication (a preflight never carries credentials), for an allowed origin and a real path."""
        if not _is_preflight():
            return None
        if request.headers.get("Origin") not in allowed:
            return None  # the route answers as to anyone, without CORS headers: the browser stops there
        methods = _methods_of_path()
        if not methods:
            return None  # no such path: its 404
        return Response(status=204, headers={
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS)})

    def mark(response: Response) -> Response:
        # Vary on every answer: a cache must not give one origin's answer (with or without CORS headers)
        # to another origin.
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            if not _is_preflight():
                response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response

    app.before_request(preflight)  # app-wide, so before any blueprint's own checks (tus: Tus-Resumable)
    app.after_request(mark)


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _methods_of_path() -> list[str]:
    """The methods the request's path answers (every route on it), in a stable order."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    return sorted(adapter.allowed_methods())
