"""OpenAPI 3 description of the public API, served at /openapi.json, with Swagger UI at /docs."""
from __future__ import annotations

from services.common.jobs import Status
from services.common.options import FORMATS, MAX_TAG_CHARS, MP3_BITRATES
from services.common.openapi import ERROR_SCHEMA, LOGIN, REGISTER, SECURITY_SCHEMES, errors as _errors

STATUSES = [str(status) for status in Status]
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}

_TIME = {"type": "string", "pattern": r"^(\d{1,2}:)?([0-5]?\d:)?\d+(\.\d{1,3})?$",
         "description": "seconds (12.5) or HH:MM:SS(.mmm), at most MAX_MEDIA_SECONDS (21600 by default)"}
_FLAG = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]}
_TAG = {"type": "string", "maxLength": MAX_TAG_CHARS}
# The output options (services/common/options.py): form fields next to the file. A bad value answers
# 400 invalid_option naming the field and what it allows, before anything is stored.
UPLOAD_OPTIONS = {
    "format": {"type": "string", "enum": list(FORMATS), "default": "mp3",
               "description": "mp3, m4a (AAC), opus (Ogg), flac or wav"},
    "bitrate": {"type": "string", "pattern": r"^\d{1,4}k?$", "description":
                "CBR in kbit/s: mp3 " + ", ".join(f"{k}k" for k in MP3_BITRATES) + " (at most 160k below 32 kHz, "
                "64k below 16 kHz); m4a 32k-320k; opus 16k-256k; none for flac and wav. Default: MP3_BITRATE "
                "(192k) for mp3, 192k m4a, 128k opus"},
    "quality": {"type": "string", "pattern": r"^\d$",
                "description": "LAME VBR quality 0 (best) to 9, mp3 only, not together with bitrate"},
    "sample_rate": {"type": "string", "enum": ["8000", "11025", "12000", "16000", "22050", "24000", "32000", "44100",
                                               "48000"],
                    "description": "Hz; opus: 8000, 12000, 16000, 24000, 48000; the others: all but 12000. "
                                   "Default: the source's"},
    "channels": {"type": "string", "enum": ["1", "2"], "description": "default: the source's, at most 2"},
    "start": {**_TIME, "description": "trim: where the output starts; " + _TIME["description"]},
    "end": {**_TIME, "description": "trim: where the output ends (later than start, within the media); "
                                    + _TIME["description"]},
    "normalize": {**_FLAG, "description": "EBU R128 to -16 LUFS, true peak -1.5 dBTP (two-pass loudnorm)"},
    "audio_track": {"type": "string", "pattern": r"^\d{1,2}$", "description": "audio stream index, 0 (first) to 63"},
    "title": {**_TAG, "description": "tag; default: the upload's name without extension"},
    "artist": _TAG,
    "album": _TAG,
    "cover": {**_FLAG, "description": "a frame at 10 % of the video as cover art (mp3, m4a, flac)"},
}
JOB_OPTIONS = {"type": "object", "description": "the options given at upload, in canonical form (format always)",
               "properties": {"format": {"type": "string", "enum": list(FORMATS)}, "bitrate": {"type": "string"},
                              "quality": {"type": "integer"}, "sample_rate": {"type": "integer"},
                              "channels": {"type": "integer"}, "start": {"type": "number"}, "end": {"type": "number"},
                              "normalize": {"type": "boolean"}, "audio_track": {"type": "integer"},
                              "title": {"type": "string"}, "artist": {"type": "string"},
                              "album": {"type": "string"}, "cover": {"type": "boolean"}}}
_AUDIO = {"schema": {"type": "string", "format": "binary"}}
AUDIO_TYPES = {spec.media_type: _AUDIO for spec in FORMATS.values()}

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
                    "options": JOB_OPTIONS,
                },
            },
        },
    },
    "paths": {
        "/register": {"post": REGISTER},
        "/login": {"post": LOGIN},
        "/upload": {"post": {
            "summary": "Upload one video; conversion runs asynchronously",
            "description": "Output options go as form fields next to the file (curl -F bitrate=320k -F file=@v.mp4). "
                           "400 invalid_option names a bad field and its allowed values; options the media cannot "
                           "satisfy (start beyond its end, a missing audio_track) end the job failed with a reason.",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **UPLOAD_OPTIONS}}}}},
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
            "summary": "Download the result of a finished job (HTTP Range supported); its type follows the format",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "fid", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The audio file", "content": AUDIO_TYPES},
                "206": {"description": "Part of the audio file", "content": AUDIO_TYPES},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                **_errors(400, 401, 404, 410, 416, 503)},
        }},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (auth, MongoDB, RabbitMQ)",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}

