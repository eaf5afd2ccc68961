"""gateway: the public REST API (register, login, upload, jobs, download) in front of the pipeline."""
from __future__ import annotations

import logging
import time
from urllib.parse import quote

import gridfs
import pymongo.errors
from flask import Blueprint, Response, jsonify, request
from opentelemetry import propagate
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import config, jobs, messaging, metrics, storage, telemetry
from services.common import openapi as api_docs
from services.common.http_range import RangeNotSatisfiable, byte_range
from services.common.jobs import Job, Status
from services.common.web import ApiError, create_base_app, error_response

from . import auth_client, openapi, outbox, uploads

log = logging.getLogger(__name__)
bp = Blueprint("gateway", __name__)
# Broker connections shared by the request threads and the outbox relay, each checked out for one
# use (pika connections are not thread-safe); the idle ones keep their heartbeats serviced.
publishers = messaging.PublisherPool()


def owned_job(query: dict, user: dict) -> Job:
    """The job matching `query` if the caller owns it (or is admin); 404 otherwise, so ids cannot be probed."""
    if not user.get("admin"):
        query = dict(query, owner=user["sub"])
    job = storage.find_job(query)
    if job is None:
        raise ApiError(404, "not_found", "no such job or file")
    return job


@bp.post("/register")
def register():
    body = request.stream.read(64 * 1024 + 1)
    if len(body) > 64 * 1024:
        raise ApiError(413, "payload_too_large", "JSON body too large")
    return auth_client.relay("/register", {"Content-Type": request.headers.get("Content-Type", "")}, body)


@bp.post("/login")
def login():
    return auth_client.relay("/login", {"Authorization": request.headers.get("Authorization", "")})


@bp.post("/upload")
def upload():
    user = auth_client.current_user()
    try:
        stored = uploads.receive_video(config.env_int("MAX_UPLOAD_BYTES"))
    except ApiError:
        metrics.UPLOADS.labels("rejected").inc()
        raise
    job_id = storage.new_id()
    token = telemetry.job_context(job_id)
    try:
        carrier: dict = {}
        propagate.inject(carrier)  # the outbox re-publishes into this same trace
        job = storage.create_job(Job(job_id, owner=user["sub"], owner_email=user.get("email"),
                                     filename=stored.filename, size=stored.size, content_type=stored.content_type,
                                     video_id=stored.video_id, trace=carrier))
        metrics.UPLOADS.labels("accepted").inc()
        metrics.UPLOAD_BYTES.inc(stored.size)
        with publishers.publisher() as publisher:
            try:
                outbox.publish_job(publisher, job)
            except Exception as exc:
                # The job is durable: whatever went wrong with the broker, the outbox relay publishes it later.
                log.warning("publish failed, left to the outbox", extra={"job_id": job_id, "error": str(exc)})
                publisher.close()
        log.info("upload accepted", extra={"job_id": job_id, "size": stored.size})
    finally:
        telemetry.detach(token)
    status_url = jobs.status_path(job_id)
    return jsonify({"job_id": job_id, "status_url": status_url}), 202, {"Location": status_url}


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    user = auth_client.current_user()
    return jsonify(jobs.view(owned_job({"_id": job_id}, user)))


@bp.get("/jobs")
def list_jobs():
    user = auth_client.current_user()
    try:
        limit = int(request.args.get("limit", 20))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        raise ApiError(400, "invalid_parameter", "limit and offset must be integers") from None
    if not 1 <= limit <= 100 or not 0 <= offset <= 100000:
        raise ApiError(400, "invalid_parameter", "limit must be 1-100 and offset 0-100000")
    query: dict = {"owner": user["sub"]}
    status = request.args.get("status")
    if status is not None:
        if status not in set(Status):
            raise ApiError(400, "invalid_parameter", f"status must be one of {', '.join(Status)}")
        query["status"] = status
    found = storage.jobs().find(query).sort("created", -1).skip(offset).limit(limit)
    return jsonify({"jobs": [jobs.view(Job.from_doc(doc)) for doc in found], "limit": limit, "offset": offset})


@bp.get("/download")
def download():
    user = auth_client.current_user()
    fid = request.args.get("fid", "")
    if not fid:
        raise ApiError(400, "missing_fid", "give the MP3 id as ?fid=MP3_ID")
    job = owned_job({"mp3_id": fid, "status": Status.DONE}, user)
    bucket = storage.mp3s()
    info = storage.file_info(bucket, fid)
    if info is None:
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
    name = jobs.mp3_name(job)
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
    body = storage.read_file(bucket, fid, start, end) if length else iter(())
    return Response(body, status=206 if requested else 200, mimetype="audio/mpeg", headers=headers,
                    direct_passthrough=True)


def _broker_ready() -> None:
    publishers.check(config.env("VIDEO_QUEUE"))


def create_app():
    app = create_base_app("gateway", {"auth": auth_client.ping, "mongodb": storage.ping, "rabbitmq": _broker_ready})
    hops = config.env_int("TRUSTED_PROXY_HOPS")
    if hops:
        # The client address (for auth's per-address limits) is the one our own proxies saw: the
        # hops-th X-Forwarded-For entry from the right. Entries a client wrote itself are further left.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)
    app.register_blueprint(bp)
    api_docs.register(app, openapi.SPEC)

    @app.errorhandler(pymongo.errors.PyMongoError)
    def _storage_down(exc):
        log.warning("storage unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return error_response(503, "storage_unavailable", "file storage is unavailable; try again shortly",
                              {"Retry-After": "5"})

    @app.errorhandler(gridfs.errors.GridFSError)
    def _corrupt_file(exc):
        log.error("stored file unreadable", extra={"error": str(exc)})
        return error_response(503, "storage_unavailable", "the stored file cannot be read right now")

    try:
        storage.ensure_indexes()
    except pymongo.errors.PyMongoError:
        log.warning("MongoDB unavailable at start; indexes will be created by the next start")
    if config.env_float("OUTBOX_INTERVAL_SECONDS") > 0:
        outbox.OutboxRelay(publishers).start()
    return app
