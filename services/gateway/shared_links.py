"""GET /links/<token>: a done job's result without a token, for browsers, mail clients and audio players.

Failures answer a small HTML page a person can read (the link was clicked, not called by a
program): 403 for a tampered link, 410 for one past its expiry or whose job was deleted. A program
that asks for JSON (Accept without text/html first) gets the API's problem details instead.
"""
from __future__ import annotations

from html import escape

from flask import Blueprint, Response, request

from services.common import links, outputs, problems
from services.common.jobs import Status
from services.common.storage import files, job_records
from services.common.web import error_response

from . import metrics
from .routes import send_result

bp = Blueprint("links", __name__)
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body><main><h1>{title}</h1><p>{text}</p></main></body></html>
"""


def page(status: int, title: str, text: str) -> Response:
    return Response(PAGE.format(title=escape(title), text=escape(text)), status=status, mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def refusal(status: int, code: str, title: str, text: str) -> Response:
    """The page for people (browsers send Accept with text/html first; no Accept at all: a page too), or
    problem details for a program."""
    best = request.accept_mimetypes.best_match(["text/html", problems.MEDIA_TYPE, "application/json"])
    if best in (None, "text/html"):
        return page(status, title, text)
    return error_response(status, code, f"{title}. {text}")


@bp.get("/links/<token>")
def signed_download(token: str):
    """The result or waveform a signed link names, with Range and ETag like /download."""
    try:
        link = links.verify(token)
    except links.LinkForged:
        metrics.LINK_DOWNLOADS.labels("forged").inc()
        return refusal(403, "invalid_link", "This link is not valid",
                    "The download link was changed or cut short. Open the link from your email again, "
                    "or download the file from your job list.")
    except links.LinkExpired:
        metrics.LINK_DOWNLOADS.labels("expired").inc()
        return refusal(410, "expired", "This link has expired",
                    "The MP3 was kept for a limited time and has been removed. "
                    "Upload the video again to convert it anew.")
    # Signing cannot be undone: the job must still exist and hold this very result (deleting it revokes the link).
    job = job_records.find_job({"_id": link.job_id})
    held = job is not None and job.status == Status.DONE and link.result_id in outputs.file_ids(job)
    info = files.file_info(files.results(), link.result_id) if held else None
    if info is None:
        metrics.LINK_DOWNLOADS.labels("revoked").inc()
        return refusal(410, "link_revoked", "This file is no longer available",
                    "The conversion was deleted or its MP3 removed, so this link no longer works.")
    metrics.LINK_DOWNLOADS.labels("ok").inc()
    return send_result(job, link.result_id, info)
