"""The gateway's public routes: accounts (relayed to auth), uploads, jobs and downloads."""
from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request, stream_with_context

from services.common import job_view, outputs
from services.common.errors import DomainError
from services.common.http_range import RangeNotSatisfiable, byte_range
from services.common.jobs import Job, Status
from services.common.storage import files, job_records
from services.common.web import ApiError, streams_body

from . import auth_client, conditional, job_listing, lifecycle, live_events, metrics, places, revisions
from .uploads import imports, intake, multipart

log = logging.getLogger(__name__)
bp = Blueprint("gateway", __name__)
DOWNLOAD_WINDOW = 4  # chunks a download holds at once (~1 MiB): DOWNLOADS_MAX of them fit the memory limit


def owned_query(query: dict, user: dict) -> dict:
    """`query` narrowed to the caller's own jobs (admins see every job)."""
    return query if user.get("admin") else dict(query, owner=user["sub"])


def owned_job(query: dict, user: dict | None = None) -> Job:
    """The job matching `query` (narrowed to `user`'s); 404 otherwise, so ids cannot be probed."""
    job = job_records.find_job(owned_query(query, user) if user is not None else query)
    if job is None:
        raise ApiError(404, "not_found", "no such job or file")
    return job


@bp.post("/register")
def register():
    """Create an account (relayed to auth)."""
    body = request.stream.read(64 * 1024 + 1)
    if len(body) > 64 * 1024:
        raise ApiError(413, "payload_too_large", "JSON body too large")
    return auth_client.relay("/register", {"Content-Type": request.headers.get("Content-Type", "")}, body)


@bp.post("/login")
def login():
    """Exchange HTTP Basic credentials for a token (relayed to auth)."""
    return auth_client.relay("/login", {"Authorization": request.headers.get("Authorization", "")})


@bp.post("/upload")
@streams_body
def upload():
    """Store a video and queue its conversion (or answer the first job of a repeated Idempotency-Key)."""
    with intake.slot():
        user = auth_client.current_user()
        held = intake.hold_idempotency_key(user)
        if isinstance(held, str):
            return _accepted(held, {"Idempotent-Replayed": "true"})
        job = _job_of(user, held, lambda: multipart.receive(user, on_flush=held.touch if held else None))
    return _accepted(job.id)


def _job_of(user: dict, held, receive) -> Job:
    """The job of an upload or import: `receive()` stores or checks the request (a refusal is counted),
    the job is made, and the Idempotency-Key `held` (if any) names it, or is let go if anything failed."""
    try:
        try:
            stored = receive()
        except (ApiError, DomainError):
            metrics.UPLOADS.labels("rejected").inc()
            raise
        job = intake.create_job(user, stored)
        if held:
            held.attach(job.id)
        return job
    except BaseException:
        if held:
            held.release()  # the client's retry with the same key may try again
        raise


@bp.post("/jobs")
def import_url():
    """A job whose video a converter fetches from `source_url`: 202 with the job (status `fetching`)."""
    user = auth_client.current_user()
    held = intake.hold_idempotency_key(user)
    if isinstance(held, str):  # the first request's job, as it is now
        return jsonify(job_view.view(owned_job({"_id": held}))), 202, {
            "Location": job_view.status_path(held), "Idempotent-Replayed": "true"}
    job = _job_of(user, held, lambda: imports.receive(user))
    status_url = job_view.status_path(job.id)
    return jsonify(job_view.view(job)), 202, {"Location": status_url}


def _accepted(job_id: str, headers: dict | None = None):
    status_url = job_view.status_path(job_id)
    return jsonify({"job_id": job_id, "status_url": status_url}), 202, {"Location": status_url, **(headers or {})}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    """One job of the caller's, with its ETag (304 when If-None-Match names it: nothing changed). A
    conditional poll, or a poll of a job that stood still, reads only the job's revision first (the owner
    check too): unchanged, no view is built, and the body kept for that revision is sent again."""
    query = owned_query({"_id": job_id}, auth_client.current_user())
    if request.if_none_match or conditional.VIEWS.steady(job_id):
        rev = revisions.READS.revision(query)
        if rev is None:
            raise ApiError(404, "not_found", "no such job or file")
        etag = conditional.job_etag(job_id, rev)
        if request.if_none_match and conditional.unchanged(etag):
            return conditional.not_modified(etag)
        if (kept := conditional.kept_view(job_id, rev, etag)) is not None:
            return kept
    return conditional.view_of(owned_job(query))


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str):
    """The job's view as Server-Sent Events, live, until it ends."""
    user = auth_client.current_user()
    query = owned_query({"_id": job_id}, user)
    owned_job(query)
    place = live_events.open_stream(user["sub"])
    chunks = live_events.events(query, request.headers.get("Last-Event-ID"), place,
                                request.environ.get("gunicorn.socket"), auth_client.still_valid)
    return Response(live_events.EventStream(stream_with_context(chunks), place), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """Stop a queued or converting job."""
    query = owned_query({"_id": job_id}, auth_client.current_user())
    return jsonify(job_view.view(lifecycle.cancel(query)))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    """Remove a job and every file of it."""
    lifecycle.delete(owned_job({"_id": job_id}, auth_client.current_user()))
    return "", 204


@bp.get("/jobs")
def list_jobs():
    """The caller's jobs, newest first (ties by id), filtered, one page; `Link: rel="next"` while more follow."""
    user = auth_client.current_user()
    page = job_listing.parse(request.args)
    found = job_records.list_jobs(user["sub"], page.shown, page.limit + 1, page.offset, page.after)
    shown, more = found[:page.limit], len(found) > page.limit  # the one extra job says whether a next page exists
    cursor = job_listing.encode_cursor(shown[-1], page.shown) if more else None
    body = {"jobs": [job_view.view(job) for job in shown], "limit": page.limit, "offset": page.offset,
            "next_cursor": cursor}
    links = {"Link": job_listing.next_link(page, request.args, cursor)} if cursor else None
    return conditional.json_response(body, links)


@bp.get("/download")
def download():
    """A result (any of a done job's, `mp3_id` or an entry of `outputs`) or a result's waveform, with Range and ETag."""
    user = auth_client.current_user()
    fid = request.args.get("fid", "")
    if not fid:
        raise ApiError(400, "missing_fid", "give the MP3 id as ?fid=MP3_ID")
    owner = None if user.get("admin") else user["sub"]
    # A shared result (dedup) may also belong to an expired job of the caller's: the done one counts.
    job = job_records.job_holding_file(fid, owner, Status.DONE) or job_records.job_holding_file(fid, owner)
    if job is None:
        raise ApiError(404, "not_found", "no such job or file")
    if job.status == Status.EXPIRED:
        raise ApiError(410, "expired", "the MP3 was removed after its retention period; upload the video again")
    if job.status != Status.DONE:
        raise ApiError(404, "not_found", "no such job or file")
    info = files.file_info(files.results(), fid)
    if info is None:
        raise ApiError(404, "not_found", "no such job or file")
    return send_result(job, fid, info)


def send_result(job: Job, fid: str, info: dict) -> Response:
    """One file of the done job (a result or a waveform), sent while holding one of the DOWNLOADS_MAX
    places (a slow reader holds its thread)."""
    return places.DOWNLOADS.hold_while_sent(lambda: _result_response(job, fid, info))


def _result_response(job: Job, fid: str, info: dict) -> Response:
    """One file of the done job (`info` its stored file's), whole or the requested range, with its ETag,
    name and Content-Type from its `results` entry: the one answer of both the token download and the
    signed link."""
    name, media_type = outputs.served_file(job, fid) or (None, None)
    if name is None:
        raise ApiError(404, "not_found", "no such job or file")
    etag = f'"{fid}"'
    if request.if_none_match.contains_weak(fid):
        return Response(status=304, headers={"ETag": etag, "Cache-Control": "private, max-age=3600"})
    length = info["length"]
    try:
        requested = byte_range(request.headers.get("Range"), length)
    except RangeNotSatisfiable as exc:
        raise ApiError(416, "range_not_satisfiable", str(exc), {"Content-Range": exc.content_range}) from None
    start, end = requested or (0, length - 1)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(max(end - start + 1, 0)),
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "ETag": etag,
        "Cache-Control": "private, max-age=3600",
    }
    if requested:
        headers["Content-Range"] = f"bytes {start}-{end}/{length}"
    body = files.read_file(files.results(), fid, start, end, max_window=DOWNLOAD_WINDOW) if length else iter(())
    return Response(body, status=206 if requested else 200, mimetype=media_type, headers=headers,
                    direct_passthrough=True)
