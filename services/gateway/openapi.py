"""OpenAPI 3.1 description of the public API, served at /openapi.json, with Swagger UI at /docs."""
from __future__ import annotations

from services.common import presets, release
from services.common.jobs import Status
from services.common.options import FORMATS, MAX_TAG_CHARS, MP3_BITRATES
from services.common.openapi import API_KEY_SCHEMAS, CREATE_API_KEY, LIST_API_KEYS, LIVENESS, LOGIN, OPENAPI_VERSION, \
    PROBLEM_BODY, PROBLEM_PATHS, RATE_LIMIT, REGISTER, RETRY_AFTER, REVOKE_API_KEY, SCHEMAS, SECURITY_SCHEMES, \
    errors as _errors, problem, readiness
from services.common.tokens import SAFE_METHODS

from . import job_listing

STATUSES = [str(status) for status in Status]
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
TOO_BUSY = {"503": {"description": "too_busy: this server has no upload or stream place free (UPLOADS_MAX, "
                                   "EVENT_STREAMS_MAX), or a dependency is unavailable; retry after Retry-After",
                    "headers": RETRY_AFTER, "content": PROBLEM_BODY}}
UPLOAD_ERRORS = {
    "408": {"description": "request_timeout: the body stopped arriving (HTTP_IDLE_TIMEOUT_SECONDS)",
            "content": PROBLEM_BODY},
    "429": {"description": "quota_exceeded: unfinished jobs (USER_MAX_ACTIVE_JOBS), stored bytes "
                           "(USER_MAX_STORED_BYTES, checked at Content-Length and again at the real size) or "
                           "uploads in 24 h (USER_MAX_UPLOADS_PER_DAY); the message gives the limit and the usage. "
                           "Retry-After when waiting helps (jobs finishing, the day's window moving)",
            "headers": {**RETRY_AFTER, **RATE_LIMIT}, "content": PROBLEM_BODY},
    **TOO_BUSY,
}
USAGE = {"type": "object", "required": ["active_jobs", "stored_bytes", "uploads_24h"], "properties": {
    "active_jobs": {"type": "integer", "description": "queued or converting jobs, and uploads in progress"},
    "stored_bytes": {"type": "integer", "description": "videos, MP3s, uploads in progress (at their declared length) "
                     "and results being converted (at the size reserved for them)"},
    "uploads_24h": {"type": "integer", "description": "uploads started in the last 24 hours"}}}

_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
_TUS = {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"type": "string", "enum": ["1.0.0"]},
        "description": "the tus protocol version (required on every tus request but OPTIONS)"}
_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EXPIRES = {"Upload-Expires": {"description": "when the unfinished upload expires (RFC 7231 date)",
                               "schema": {"type": "string"}}}
_JOB_ID_HEADER = {"Job-Id": {"description": "the job made of the finished upload", "schema": {"type": "string"}}}
_TUS_OPTIONS = {"tags": ["tus"], "summary": "tus: what the server supports (no token needed)",
                "responses": {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size", "headers": {
                    "Tus-Version": {"schema": {"type": "string"}, "required": True},
                    "Tus-Extension": {"schema": {"type": "string"}, "required": True},
                    "Tus-Max-Size": {"schema": _DIGITS, "required": True}}}}}


def _head_errors(*statuses: int) -> dict:
    """A HEAD answer carries no body, so its errors have no content."""
    return {code: {"description": answer["description"]} for code, answer in _errors(*statuses).items()}


TUS_PATHS = {
    "/uploads/": {
        "options": dict(_TUS_OPTIONS, operationId="getTusCapabilities"),
        "post": {
            "operationId": "createUpload", "tags": ["tus"],
            "summary": "tus creation: start a resumable upload of Upload-Length bytes, then PATCH them",
            "description": "Upload-Metadata: comma-separated `key base64(value)` pairs; `filename` names the "
                           "video, the output option fields, `outputs` and `callback_url` are those of POST /upload. "
                           "With an "
                           "Idempotency-Key, a repeat by the same user within 24 h answers the first upload's "
                           "Location (header Idempotent-Replayed: resume it with HEAD); 410 with Job-Id once that "
                           "upload's record is gone. `preset` names a preset as on POST /upload.",
            "security": [{"bearer": []}],
            "parameters": [_TUS,
                           {"name": "Upload-Length", "in": "header", "required": True, "schema": _DIGITS},
                           {"name": "Upload-Metadata", "in": "header", "required": False, "schema": {"type": "string"}},
                           {"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:~+/=-]{1,128}$"}}],
            "responses": {"201": {"description": "Created (or replayed); PATCH the bytes to Location", "headers": {
                "Location": {"schema": {"type": "string"}, "required": True}, **_EXPIRES,
                "Idempotent-Replayed": {"schema": {"type": "string"}}, **RATE_LIMIT}},
                **_errors(400, 401, 409, 410, 412, 413, 503), "429": UPLOAD_ERRORS["429"]},
        },
    },
    "/uploads/{upload_id}": {
        "options": dict(_TUS_OPTIONS, parameters=[_UPLOAD_ID], operationId="getTusUploadCapabilities"),
        "head": {
            "operationId": "getUploadOffset", "tags": ["tus"],
            "summary": "tus: the offset to resume at (and Job-Id once the upload is finished)",
            "security": [{"bearer": []}], "parameters": [_UPLOAD_ID, _TUS],
            "responses": {"200": {"description": "The upload's state", "headers": {
                "Upload-Offset": {"schema": _DIGITS, "required": True},
                "Upload-Length": {"schema": _DIGITS, "required": True}, **_EXPIRES, **_JOB_ID_HEADER}},
                **_head_errors(400, 401, 404, 410, 412, 503)},
        },
        "patch": {
            "operationId": "appendUpload", "tags": ["tus"],
            "summary": "tus: append bytes at Upload-Offset; the last byte makes the job (Job-Id)",
            "security": [{"bearer": []}],
            "parameters": [_UPLOAD_ID, _TUS,
                           {"name": "Upload-Offset", "in": "header", "required": True, "schema": _DIGITS}],
            "requestBody": {"required": True, "content": {"application/offset+octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
            "responses": {"204": {"description": "Stored; Upload-Offset is the new offset", "headers": {
                "Upload-Offset": {"schema": _DIGITS, "required": True}, **_EXPIRES, **_JOB_ID_HEADER}},
                **_errors(400, 401, 404, 409, 410, 412, 413, 415, 423, 503)},
        },
        "delete": {
            "operationId": "deleteUpload", "tags": ["tus"],
            "summary": "tus termination: remove the upload and its bytes",
            "security": [{"bearer": []}], "parameters": [_UPLOAD_ID, _TUS],
            "responses": {"204": {"description": "Removed"}, **_errors(401, 404, 412, 423, 503)},
        },
    },
}
HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}
CALLBACK = ("http(s) URL the job's end (job.done, job.failed, job.cancelled) is POSTed to, signed per Standard "
            "Webhooks with your secret; non-public addresses are refused (400 invalid_callback_url)")

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
PRESET_FIELD = {"type": "string", "maxLength": 40, "description":
                "a preset's name: built in (" + ", ".join(presets.BUILTIN) + ") or one of yours (GET /me/presets); "
                "its option fields are the defaults, the fields you give override them (a bitrate replaces the "
                "preset's quality and the other way round; another format drops the preset's bitrate, quality and "
                "sample_rate). 400 unknown_preset for any other name"}
PRESET_NAME = {"name": "name", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": presets.NAME.pattern}}
PRESET_SCHEMA = {"type": "object", "required": ["name", "builtin", "description", "fields"], "properties": {
    "name": {"type": "string"}, "builtin": {"type": "boolean", "description": "built in (cannot be changed)"},
    "description": {"type": ["string", "null"], "description": "what a built-in preset makes; null for yours"},
    "fields": {"type": "object", "additionalProperties": {"type": "string"},
               "description": "option fields as an upload sends them (POST /upload's form fields)"}}}
PRESET = {"application/json": {"schema": {"$ref": "#/components/schemas/Preset"}}}
JOB_OPTIONS = {"type": "object", "description": "the options given at upload, in canonical form (format always)",
               "properties": {"format": {"type": "string", "enum": list(FORMATS)}, "bitrate": {"type": "string"},
                              "quality": {"type": "integer"}, "sample_rate": {"type": "integer"},
                              "channels": {"type": "integer"}, "start": {"type": "number"}, "end": {"type": "number"},
                              "normalize": {"type": "boolean"}, "audio_track": {"type": "integer"},
                              "title": {"type": "string"}, "artist": {"type": "string"},
                              "album": {"type": "string"}, "cover": {"type": "boolean"}}}
# Several outputs (services/common/outputs.py, issue 23): asked for as `outputs`, shown per result.
OUTPUTS_FIELD = {"type": "string", "description":
                 "several outputs from one video: a JSON array (at most MAX_OUTPUTS_PER_JOB, 5 by default) of objects "
                 "of option fields, e.g. [{\"format\":\"mp3\",\"bitrate\":\"192k\"},{\"format\":\"opus\","
                 "\"bitrate\":\"64k\"},{\"format\":\"flac\"}]. Option fields given beside it are defaults each "
                 "entry overrides (a default bitrate or quality the entry's format cannot take is left out for it). "
                 "400 invalid_option names a bad one as outputs[1].bitrate (0-based). `options` of the job is the "
                 "first entry's"}
LOUDNESS = {"type": ["object", "null"], "description": "EBU R128 measurement",
            "properties": {"integrated_lufs": {"type": ["number", "null"]}, "range_lu": {"type": ["number", "null"]},
                           "true_peak_dbtp": {"type": ["number", "null"]}}}
CHAPTER = {"type": "object", "properties": {"title": {"type": ["string", "null"]}, "start": {"type": "number"},
                                            "end": {"type": "number"}}}
JOB_OUTPUT = {
    "type": "object", "description": "one result file of a done job (one per output; split=chapters: one per chapter)",
    "required": ["mp3_id", "output", "download_url"],
    "properties": {
        "mp3_id": {"type": "string", "description": "its fid: GET /download?fid=…"},
        "output": {"type": "integer", "description": "index in the outputs asked for (0 without `outputs`)"},
        "filename": {"type": ["string", "null"]},
        "format": {"type": "string", "enum": list(FORMATS)},
        "media_type": {"type": ["string", "null"]},
        "size": {"type": ["integer", "null"], "description": "bytes"},
        "audio_seconds": {"type": ["number", "null"]},
        "options": JOB_OPTIONS,
        "download_url": {"type": "string"},
        "link": {"type": ["string", "null"], "description": "signed URL downloading it without a token"},
        "loudness": LOUDNESS,
        "waveform_url": {"type": ["string", "null"], "description": "its peaks (BBC audiowaveform JSON v2), "
                         "downloaded like a result: GET /download?fid=<waveform id>, application/json"},
        "waveform_link": {"type": ["string", "null"], "description": "signed URL of the peaks, without a token"},
        "chapter": {"type": ["object", "null"], "description": "split=chapters: which chapter this file is",
                    "properties": {"index": {"type": "integer", "description": "1-based"},
                                   "count": {"type": "integer"}, **CHAPTER["properties"]}},
    },
}
JOB_RESULT_FIELDS = {
    "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/JobOutput"},
                "description": "once done: every result file (empty before); mp3_id, download_url and link are "
                               "the first's"},
    "chapters": {"type": "array", "items": CHAPTER, "description": "once done: the source's chapters (seconds)"},
    "loudness": {"type": ["object", "null"], "description": "once done: the first result's loudness and the "
                 "source's (when normalize measured it)",
                 "properties": {"output": LOUDNESS, "source": LOUDNESS}},
    "preset": {"type": ["string", "null"], "description": "the preset named at upload"},
    "source_url": {"type": ["string", "null"], "description": "where a URL import fetched the video"},
    "fetch": {"type": ["object", "null"], "description": "while fetching: bytes read and announced total",
              "properties": {"bytes": {"type": "integer"}, "total": {"type": ["integer", "null"]}}},
}
# Conditional GETs (services/gateway/conditional.py) and pages (services/gateway/job_listing.py)
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the ETag of the answer you have (or several, comma-separated): 304 if it is current"}
CONDITIONAL_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "required": True,
             "description": "strong validator of this exact JSON answer: it changes whenever any field does"},
    "Cache-Control": {"schema": {"type": "string"}, "description": "private, no-cache: revalidate every time"}}
NOT_MODIFIED = {"304": {"description": "Not Modified: If-None-Match named the current ETag; no body",
                        "headers": CONDITIONAL_HEADERS}}
NEXT_LINK = {"Link": {"schema": {"type": "string"}, "description": 'RFC 8288 `</jobs?…&cursor=…>; rel="next"`, '
                      "present while more jobs follow (the same on a 304)"}}
_RFC3339 = {"type": "string", "format": "date-time",
            "description": "RFC 3339 with its offset (Z or ±hh:mm; percent-encode '+'), exclusive"}
LIST_PARAMETERS = [
    {"name": "limit", "in": "query", "description": f"jobs per page (default {job_listing.LIMIT_DEFAULT})",
     "schema": {"type": "integer", "minimum": 1, "maximum": job_listing.LIMIT_MAX,
                "default": job_listing.LIMIT_DEFAULT}},
    {"name": "cursor", "in": "query", "description": "opaque: next_cursor of the previous page (400 invalid_cursor if "
     "it is not one, or was made for other filters)", "schema": {"type": "string",
                                                                 "maxLength": job_listing.MAX_CURSOR_CHARS}},
    {"name": "offset", "in": "query", "description": "jobs to skip (the older way to page; not with cursor)",
     "schema": {"type": "integer", "minimum": 0, "maximum": job_listing.OFFSET_MAX, "default": 0}},
    {"name": "status", "in": "query", "style": "form", "explode": True,
     "description": "only jobs in these statuses: repeat it, or separate them by commas",
     "schema": {"type": "array", "items": {"type": "string", "enum": STATUSES}}},
    {"name": "created_after", "in": "query", "description": "only jobs created after this instant",
     "schema": _RFC3339},
    {"name": "created_before", "in": "query", "description": "only jobs created before this instant",
     "schema": _RFC3339},
    IF_NONE_MATCH,
]
JOB_PAGE = {"type": "object", "required": ["jobs", "limit", "offset", "next_cursor"], "properties": {
    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
    "limit": {"type": "integer"}, "offset": {"type": "integer", "description": "as given (0 with a cursor)"},
    "next_cursor": {"type": ["string", "null"],
                    "description": "the cursor of the next page; null on the last"}}}
_AUDIO = {"schema": {"type": "string", "format": "binary"}}
AUDIO_TYPES = {spec.media_type: _AUDIO for spec in FORMATS.values()}
# A result's waveform (peaks, BBC audiowaveform JSON v2) downloads like a result
DOWNLOAD_TYPES = {**AUDIO_TYPES, "application/json": {"schema": {"type": "object"}}}

IMPORT_URL = {
    "operationId": "importUrl", "tags": ["jobs"],
    "summary": "Convert a video fetched from an http(s) URL (a URL import); the fetch runs asynchronously",
    "description": "The job starts `fetching`: a converter fetches source_url (redirects followed, at most "
                   "IMPORT_MAX_REDIRECTS, each hop and the connection itself checked: public addresses only), "
                   "stores it (at most MAX_UPLOAD_BYTES, within IMPORT_TIMEOUT_SECONDS), then the job is `queued` "
                   "and converts like an upload. While fetching, the view's `fetch` has the bytes so far. A page "
                   "(HTML, text), a 4xx, a source too large or too slow ends the job failed with a reason; 5xx, "
                   "timeouts and resets are retried with back-off. Options, callback_url, Idempotency-Key and "
                   "quotas are as for POST /upload. A JSON body, or the same fields form-urlencoded.",
    "security": [{"bearer": []}],
    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "a client-chosen key, unique per import (a UUID)",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:~+/=-]{1,128}$"}}],
    "requestBody": {"required": True, "content": {mime: {"schema": {
        "type": "object", "required": ["source_url"],
        "properties": {"source_url": {"type": "string", "format": "uri", "maxLength": 2000,
                                      "description": "http or https, no credentials, a public host"},
                       **UPLOAD_OPTIONS, "callback_url": {"type": "string", "description": CALLBACK}}}}
        for mime in ("application/json", "application/x-www-form-urlencoded")}},
    "responses": {"202": {"description": "Accepted: the job, status fetching; follow Location", "headers": {
        "Location": {"description": "the job's status_url", "schema": {"type": "string"}},
        "Idempotent-Replayed": {"description": "true when this answers a repeated Idempotency-Key",
                                "schema": {"type": "string"}}, **RATE_LIMIT}, "content": JOB},
        **_errors(400, 401, 409, 415), **UPLOAD_ERRORS,
        # a repeated Idempotency-Key whose first job was deleted since: nothing left to answer with
        "404": problem("not_found: the job a repeated Idempotency-Key made was deleted since")},
}

SPEC = {
    "openapi": OPENAPI_VERSION,
    "info": {
        "title": "vid2mp3",
        "version": release.version(),
        "description": "Upload a video, get an MP3 back asynchronously (and an email when it is ready).\n\n"
                       "Browsers on other origins: the origins in CORS_ALLOWED_ORIGINS get CORS. A preflight "
                       "(OPTIONS with Access-Control-Request-Method) of any path is answered 204 without "
                       "credentials, with Access-Control-Allow-Methods, -Allow-Headers and -Max-Age; every answer "
                       "to such an origin carries Access-Control-Allow-Origin and Access-Control-Expose-Headers "
                       "(Location, the tus headers, Job-Id, RateLimit, RateLimit-Policy, Retry-After, ETag, "
                       "Link, ...) and Vary: Origin. No credentials mode: send the token in Authorization.",
    },
    "components": {
        "securitySchemes": SECURITY_SCHEMES,
        "schemas": {
            **SCHEMAS,
            **API_KEY_SCHEMAS,
            "Preset": PRESET_SCHEMA,
            "Job": {
                "type": "object",
                "required": ["job_id", "status", "status_url"],
                "properties": {
                    "job_id": {"type": "string"},
                    "status": {"type": "string", "enum": STATUSES},
                    "filename": {"type": ["string", "null"]},
                    "size": {"type": ["integer", "null"]},
                    "created_at": {"type": ["string", "null"], "format": "date-time"},
                    "updated_at": {"type": ["string", "null"], "format": "date-time"},
                    "status_url": {"type": "string"},
                    "reason": {"type": ["string", "null"], "description": "why the job failed"},
                    "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 100,
                                 "description": "percent converted, while converting (null while unknown)"},
                    "eta_seconds": {"type": ["number", "null"], "description": "estimated seconds left"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time",
                                   "description": "when retention removes the job's files (then: expired)"},
                    "mp3_id": {"type": ["string", "null"], "description": "the fid to download, once done"},
                    "download_url": {"type": ["string", "null"]},
                    "link": {"type": ["string", "null"],
                             "description": "once done: an absolute signed URL that downloads the MP3 without a token "
                                            "(GET /links/{token}), valid until expires_at, "
                                            "void once the job is deleted"},
                    "audio_seconds": {"type": ["number", "null"]},
                    "options": JOB_OPTIONS,
                    "preset": {"type": ["string", "null"],
                               "description": "the preset named at upload; `options` are resolved (its fields and "
                                              "the explicit ones)"},
                    "reused": {"type": "boolean", "description": "done at once with the MP3 of an identical "
                               "earlier upload (same content and options): no conversion ran"},
                    "callback_url": {"type": ["string", "null"],
                                     "description": "where the job's end is POSTed as a signed webhook"},
                    "webhook": {"anyOf": [{"$ref": "#/components/schemas/WebhookAttempt"}, {"type": "null"}]},
                    **JOB_RESULT_FIELDS,
                },
            },
            "JobOutput": JOB_OUTPUT,
            "WebhookAttempt": {
                "type": "object", "description": "the last webhook delivery attempt of the job",
                "properties": {
                    "webhook_id": {"type": "string", "description": "the webhook-id header, the same on every retry"},
                    "state": {"type": "string", "enum": ["delivered", "retrying", "failed"]},
                    "attempts": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "status_code": {"type": ["integer", "null"]},
                    "error": {"type": ["string", "null"]},
                },
            },
        },
    },
    "paths": {
        "/register": {"post": REGISTER},
        "/login": {"post": LOGIN},
        "/upload": {"post": {
            "operationId": "uploadVideo", "tags": ["jobs"],
            "summary": "Upload one video; conversion runs asynchronously",
            "description": "Output options go as form fields next to the file (curl -F bitrate=320k -F file=@v.mp4). "
                           "400 invalid_option names a bad field and its allowed values; options the media cannot "
                           "satisfy (start beyond its end, a missing audio_track) end the job failed with a reason. "
                           "With an Idempotency-Key, a repeat of the key by the same user within 24 h answers "
                           "the first job (202, header Idempotent-Replayed) without reading or storing the body; "
                           "409 idempotency_conflict while the first upload is still being received.",
            "security": [{"bearer": []}],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "description": "a client-chosen key, unique per upload (a UUID)",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:~+/=-]{1,128}$"}}],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **UPLOAD_OPTIONS,
                               "outputs": OUTPUTS_FIELD, "preset": PRESET_FIELD,
                               "callback_url": {"type": "string", "description": CALLBACK}}}}}},
            "responses": {"202": {"description": "Accepted; poll status_url", "headers": {
                "Idempotent-Replayed": {"description": "true when this answers a repeated Idempotency-Key",
                                        "schema": {"type": "string"}}, **RATE_LIMIT},
                "content": {"application/json": {
                    "schema": {"type": "object", "required": ["job_id", "status_url"], "properties": {
                        "job_id": {"type": "string"}, "status_url": {"type": "string"}}}}}},
                **_errors(400, 401, 409, 413, 415), **UPLOAD_ERRORS},
        }},
        "/me": {"get": {
            "operationId": "getMe", "tags": ["accounts"],
            "summary": "Your account: email, usage, limits (null for admins: they are exempt) and webhook secret",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "You", "content": {"application/json": {"schema": {
                "type": "object", "required": ["email", "admin", "usage", "limits", "webhook_secret"], "properties": {
                    "email": {"type": ["string", "null"]}, "admin": {"type": "boolean"},
                    "usage": USAGE, "limits": dict(USAGE, type=["object", "null"]),
                    "webhook_secret": {"type": "string", "pattern": "^whsec_",
                                       "description": "the key your webhooks are signed with (Standard Webhooks)"}}}}}},
                **_errors(401, 503)},
        }},
        "/jobs": {"post": IMPORT_URL, "get": {
            "operationId": "listJobs", "tags": ["jobs"],
            "summary": "Your jobs, newest first (ties by job_id), a page at a time",
            "description": "Follow `Link: <…>; rel=\"next\"` (or send `next_cursor` back as `cursor`) until it is "
                           "absent: every job is listed once, also while new ones arrive (they come before the "
                           "first page). A cursor keeps the filters it was made with: repeat them (the link does). "
                           "`offset` is the older way to page: jobs added meanwhile shift its pages. Poll with "
                           "If-None-Match: an unchanged page answers 304.",
            "security": [{"bearer": []}],
            "parameters": LIST_PARAMETERS,
            "responses": {"200": {"description": "One page of jobs", "headers": {**CONDITIONAL_HEADERS, **NEXT_LINK},
                                  "content": {"application/json": {"schema": JOB_PAGE}}},
                          **NOT_MODIFIED, **_errors(400, 401, 503)},
        }},
        "/jobs/{job_id}": {
            "get": {"operationId": "getJob", "tags": ["jobs"], "summary": "One job's status",
                    "description": "Poll with If-None-Match set to the ETag you have: 304 (no body) until the view "
                                   "changes. The ETag changes with every field of the view.",
                    "security": [{"bearer": []}], "parameters": [JOB_ID, IF_NONE_MATCH],
                    "responses": {"200": {"description": "The job", "headers": CONDITIONAL_HEADERS, "content": JOB},
                                  **NOT_MODIFIED, **_errors(401, 404, 503)}},
            "delete": {"operationId": "deleteJob", "tags": ["jobs"],
                       "summary": "Delete the job and every file of it (cancels it first if it runs)",
                       "security": [{"bearer": []}], "parameters": [JOB_ID],
                       "responses": {"204": {"description": "Deleted"}, **_errors(401, 404, 503)}},
        },
        "/jobs/{job_id}/cancel": {"post": {
            "operationId": "cancelJob", "tags": ["jobs"],
            "summary": "Cancel a queued or converting job (repeating it is harmless)",
            "security": [{"bearer": []}], "parameters": [JOB_ID],
            "responses": {"200": {"description": "The cancelled job", "content": JOB},
                          **_errors(401, 404, 409, 503)},
        }},
        "/jobs/{job_id}/events": {"get": {
            "operationId": "streamJobEvents", "tags": ["jobs"],
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
                          **_errors(401, 404), **TOO_BUSY,
                          "429": {"description": "too_many_streams: you hold EVENT_STREAMS_PER_USER streams on this "
                                                 "server already; close one or poll the job",
                                  "headers": {**RETRY_AFTER, **RATE_LIMIT}, "content": PROBLEM_BODY}},
        }},
        "/download": {"get": {
            "operationId": "downloadResult", "tags": ["downloads"],
            "summary": "Download a result (any entry of a done job's outputs) or its waveform (HTTP Range supported); "
                       "its type follows the format",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "fid", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The audio file (or a waveform's JSON)", "content": DOWNLOAD_TYPES},
                "206": {"description": "Part of the file", "content": DOWNLOAD_TYPES},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                **_errors(400, 401, 404, 410, 416, 503)},
        }},
        **TUS_PATHS,
        "/links/{token}": {"get": {
            "operationId": "downloadByLink", "tags": ["downloads"],
            "summary": "Download a done job's result or waveform with a signed link of its view (no token; HTTP Range "
                       "supported)",
            "description": "A tampered link answers 403 and an expired or revoked one (job deleted) 410, each with "
                           "an HTML page for people.",
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The audio file (or a waveform's JSON)", "content": DOWNLOAD_TYPES},
                "206": {"description": "Part of the file", "content": DOWNLOAD_TYPES},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                "403": {"description": "The link was tampered with (problem details when Accept prefers JSON)",
                        "content": {**HTML_PAGE, **PROBLEM_BODY}},
                "410": {"description": "The link expired, or its job was deleted (problem details when Accept "
                                       "prefers JSON)", "content": {**HTML_PAGE, **PROBLEM_BODY}},
                **_errors(404, 416, 503)},
        }},
        "/me/webhook-secret": {"post": {
            "operationId": "rotateWebhookSecret", "tags": ["accounts"],
            "summary": "Replace your webhook signing secret (whsec_…); the old one stops signing at once",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "The new secret", "content": {"application/json": {"schema": {
                "type": "object", "required": ["webhook_secret"],
                "properties": {"webhook_secret": {"type": "string", "pattern": "^whsec_"}}}}}},
                **_errors(401, 503)},
        }},
        "/me/presets": {"get": {
            "operationId": "listPresets", "tags": ["presets"],
            "summary": "The built-in presets, then yours by name",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "Every preset you may name", "content": {"application/json": {
                "schema": {"type": "object", "required": ["presets"], "properties": {
                    "presets": {"type": "array", "items": {"$ref": "#/components/schemas/Preset"}}}}}}},
                **_errors(401, 503)},
        }},
        "/me/presets/{name}": {
            "get": {"operationId": "getPreset", "tags": ["presets"], "summary": "One preset: built in or yours",
                    "security": [{"bearer": []}], "parameters": [PRESET_NAME],
                    "responses": {"200": {"description": "The preset", "content": PRESET}, **_errors(401, 404, 503)}},
            "put": {"operationId": "putPreset", "tags": ["presets"],
                    "summary": "Store or replace one of your presets (at most PRESETS_MAX_PER_USER)",
                    "description": "The body is a JSON object of option fields (text, numbers or booleans), checked "
                                   "like an upload's and stored in canonical form. A name is 1 to 40 of a-z 0-9 _ -.",
                    "security": [{"bearer": []}], "parameters": [PRESET_NAME],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "properties": UPLOAD_OPTIONS, "additionalProperties": False}}}},
                    "responses": {"200": {"description": "Replaced", "content": PRESET},
                                  "201": {"description": "Created", "content": PRESET},
                                  **_errors(401, 404, 413, 415, 503),
                                  "400": problem("invalid_preset_name, invalid_option (the field named) or "
                                                 "invalid_json"),
                                  "409": problem("builtin_preset: the name is a built-in preset's; too_many_presets: "
                                                 "you keep PRESETS_MAX_PER_USER presets already")}},
            "delete": {"operationId": "deletePreset", "tags": ["presets"], "summary": "Forget one of your presets",
                       "description": "Jobs that named it keep their resolved options.",
                       "security": [{"bearer": []}], "parameters": [PRESET_NAME],
                       "responses": {"204": {"description": "Deleted"}, **_errors(401, 404, 503),
                                     "409": problem("builtin_preset: built-in presets cannot be deleted")}},
        },
        "/me/api-keys": {"get": LIST_API_KEYS, "post": CREATE_API_KEY},
        "/me/api-keys/{key_id}": {"delete": REVOKE_API_KEY},
        "/": {"get": {"operationId": "getWebApp", "tags": ["web"],
                      "summary": "The web app: a page that does all of the above in a browser",
                      "responses": {"200": {"description": "The page", "content": {"text/html": {
                          "schema": {"type": "string"}}}}}}},
        "/healthz": LIVENESS,
        "/readyz": readiness("auth, MongoDB, RabbitMQ"),
        **PROBLEM_PATHS,
    },
}



def _read_keys_refused(spec: dict) -> dict:
    """Every operation that takes the Bearer credential and changes something answers 403 read_only_key to a
    read-only API key (auth_client.current_user refuses it for every such route)."""
    for operations in spec["paths"].values():
        for method, operation in operations.items():
            if method.upper() not in SAFE_METHODS and {"bearer": []} in operation.get("security", []):
                operation["responses"].setdefault("403", _errors(403)["403"])
    return spec


SPEC = _read_keys_refused(SPEC)
