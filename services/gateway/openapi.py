"""OpenAPI 3 description of the public API, served at /openapi.json, with Swagger UI at /docs."""
from __future__ import annotations

from services.common.jobs import Status
from services.common.openapi import ERROR_SCHEMA, LOGIN, REGISTER, SECURITY_SCHEMES, errors as _errors

STATUSES = [str(status) for status in Status]
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}

SPEC = {
    "openapi": "3.0.3",
    "info": {
        "title": "vid2mp3",
        "version": "1.0.0",
        "description": "Upload a video, get an MP3 back asynchronously (and an email when it is ready).",
    },
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            "Error": ERROR_SCHEMA,
            "Job": {
                "type": "object",
                "required": ["job_id", "status", "status_url"],
                "properties": {
                    "job_id": {"type": "string"},
                    "status": {"type": "string", "enum": STATUSES},
                    "filename": {"type": "string", "nullable": True},
                    "size": {"type": "integer", "nullable": True},
                    "created_at": {"type": "string", "format": "date-time", "nullable": True},
                    "updated_at": {"type": "string", "format": "date-time", "nullable": True},
                    "status_url": {"type": "string"},
                    "reason": {"type": "string", "nullable": True, "description": "why the job failed"},
                    "progress": {"type": "number", "nullable": True, "minimum": 0, "maximum": 100,
                                 "description": "percent converted, while converting (null while unknown)"},
                    "eta_seconds": {"type": "number", "nullable": True, "description": "estimated seconds left"},
                    "expires_at": {"type": "string", "format": "date-time", "nullable": True,
                                   "description": "when retention removes the job's files (then: expired)"},
                    "mp3_id": {"type": "string", "nullable": True, "description": "the fid to download, once done"},
                    "download_url": {"type": "string", "nullable": True},
                    "audio_seconds": {"type": "number", "nullable": True},
                },
            },
        },
    },
    "paths": {
        "/register": {"post": REGISTER},
        "/login": {"post": LOGIN},
        "/upload": {"post": {
            "summary": "Upload one video; conversion runs asynchronously",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}}}},
            "responses": {"202": {"description": "Accepted; poll status_url", "content": {"application/json": {
                "schema": {"type": "object", "required": ["job_id", "status_url"], "properties": {
                    "job_id": {"type": "string"}, "status_url": {"type": "string"}}}}}},
                **_errors(400, 401, 413, 415, 503)},
        }},
        "/jobs": {"get": {
            "summary": "Your jobs, newest first",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100000}},
                {"name": "status", "in": "query",
                 "schema": {"type": "string", "enum": STATUSES}},
            ],
            "responses": {"200": {"description": "Jobs", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                                 "limit": {"type": "integer"}, "offset": {"type": "integer"}}}}}},
                **_errors(400, 401, 503)},
        }},
        "/jobs/{job_id}": {
            "get": {"summary": "One job's status", "security": [{"bearer": []}], "parameters": [JOB_ID],
                    "responses": {"200": {"description": "The job", "content": JOB}, **_errors(401, 404, 503)}},
            "delete": {"summary": "Delete the job and every file of it (cancels it first if it runs)",
                       "security": [{"bearer": []}], "parameters": [JOB_ID],
                       "responses": {"204": {"description": "Deleted"}, **_errors(401, 404, 503)}},
        },
        "/jobs/{job_id}/cancel": {"post": {
            "summary": "Cancel a queued or converting job (repeating it is harmless)",
            "security": [{"bearer": []}], "parameters": [JOB_ID],
            "responses": {"200": {"description": "The cancelled job", "content": JOB},
                          **_errors(401, 404, 409, 503)},
        }},
        "/jobs/{job_id}/events": {"get": {
            "summary": "Server-Sent Events of the job's view: now, at every change, until a final status",
            "description": "Each event's id is the job's revision; send it back as Last-Event-ID to resume. "
                           "A comment line every 15 s keeps the stream open through proxies.",
            "security": [{"bearer": []}],
            "parameters": [JOB_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                                    "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The event stream", "content": {"text/event-stream": {"schema": {
                "type": "object", "description": "one event",
                "properties": {"id": {"type": "string", "description": "the job's revision"},
                               "event": {"type": "string", "enum": ["message", "deleted"]},
                               "data": {"type": "string", "description": "the job's view as JSON (a Job)"}}}}}},
                          **_errors(401, 404, 503)},
        }},
        "/download": {"get": {
            "summary": "Download the MP3 of a finished job (HTTP Range supported)",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "fid", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The MP3", "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}},
                "206": {"description": "Part of the MP3", "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                **_errors(400, 401, 404, 410, 416, 503)},
        }},
        "/": {"get": {"summary": "The web app: a page that does all of the above in a browser",
                      "responses": {"200": {"description": "The page", "content": {"text/html": {
                          "schema": {"type": "string"}}}}}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (auth, MongoDB, RabbitMQ)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}

