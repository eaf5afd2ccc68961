"""The web app for people: GET / serves a single page (plain HTML, CSS and ES modules, no build step)
that drives the public API with the user's Bearer token, under a strict Content-Security-Policy."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from . import metrics

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = STATIC / "assets"
# Only the page's own files run or load: no inline script or style, no plugins, no framing (clickjacking),
# no <base> rewriting, forms post only here. blob: for media lets the player use a downloaded result;
# media from any https: origin because a signed link may point at another public host name.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "media-src 'self' blob: https:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # job ids and signed links in the address bar stay here
    "X-Frame-Options": "DENY",  # frame-ancestors' older twin, for browsers without CSP level 2
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Stated here, not guessed from the machine's /etc/mime.types (absent from slim images): with nosniff a
# wrong type would stop the script or style.
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
bp = Blueprint("webapp", __name__)


def _secured(response: Response, cache: str) -> Response:
    response.headers.update(HEADERS)
    response.headers["Cache-Control"] = cache
    return response


@bp.get("/")
def index():
    """The page itself: always revalidated (an ETag makes that a 304), so a deploy shows at once."""
    metrics.WEB_PAGE_LOADS.inc()
    return _secured(send_from_directory(STATIC, "index.html", mimetype="text/html", etag=True), "no-cache")


@bp.get("/assets/<path:name>")
def asset(name: str):
    """Scripts, styles, icons. The modules import each other by plain names, so a cached copy older
    than the page could mix versions: browsers keep them but revalidate (cheap 304s)."""
    mimetype = TYPES.get(Path(name).suffix)
    return _secured(send_from_directory(ASSETS, name, mimetype=mimetype, etag=True), "no-cache")
