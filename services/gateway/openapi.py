"""OpenAPI 3 description of the public API, served at /openapi.json, with Swagger UI at /docs."""
from __future__ import annotations

from services.common.openapi import ERROR_SCHEMA, LOGIN, REGISTER, SECURITY_SCHEMES, errors as _errors

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
                    "status": {"type": "string", "enum": ["queued", "converting", "done", "failed"]},
                    "filename": {"type": "string", "nullable": True},
                    "size": {"type": "integer", "nullable": True},
                    "created_at": {"type": "string", "format": "date-time", "nullable": True},
                    "updated_at": {"type": "string", "format": "date-time", "nullable": True},
                    "status_url": {"type": "string"},
                    "reason": {"type": "string", "nullable": True, "description": "why the job failed"},
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
                 "schema": {"type": "string", "enum": ["queued", "converting", "done", "failed"]}},
            ],
            "responses": {"200": {"description": "Jobs", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                                 "limit": {"type": "integer"}, "offset": {"type": "integer"}}}}}},
                **_errors(400, 401, 503)},
        }},
        "/jobs/{job_id}": {"get": {
            "summary": "One job's status",
            "security": [{"bearer": []}],
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The job", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Job"}}}}, **_errors(401, 404, 503)},
        }},
        "/download": {"get": {
            "summary": "Download the MP3 of a finished job (HTTP Range supported)",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "fid", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The MP3", "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}},
                "206": {"description": "Part of the MP3", "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}},
                **_errors(400, 401, 404, 416, 503)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (auth, MongoDB, RabbitMQ)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}

