"""POST /upload's body: multipart, streamed straight into GridFS (never held whole in memory or on disk)."""
from __future__ import annotations

from typing import Callable

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from services.common import config, presets
from services.common import options as output_options
from services.common.options import OptionError
from services.common.storage import files, uploads as upload_records
from services.common.web import ApiError

from .. import quotas
from .intake import READ_SIZE, StoredUpload, checked_callback_url, invalid_option, requested, safe_filename

MAX_FIELD_BYTES = 64 * 1024  # plain form fields next to the file are small; anything bigger is abuse
MAX_FIELDS = 32  # the options are 13; room for a client's own extras, no more


def receive(user: dict, on_flush: Callable[[], None] | None = None) -> StoredUpload:
    """The body, stored, within the user's quotas: checked at the declared length before the first
    byte is read and again at the real one (the video is removed if that no longer fits)."""
    check_request(config.env_int("MAX_UPLOAD_BYTES"))  # a 413 or 415 costs no quota
    upload_id = quotas.admit(user, request.content_length or 0)
    stored = receive_video(config.env_int("MAX_UPLOAD_BYTES"), upload_id, user["sub"], on_flush)
    try:
        quotas.confirm(user, upload_id, stored.size)
    except BaseException:
        files.delete_file(files.videos(), upload_id)
        upload_records.forget_upload(upload_id)
        raise
    return stored


def check_fields_so_far(fields: dict[str, str], owner: str) -> None:
    """Refuse, before the file is stored, options that are bad whatever the fields after the file
    say (only `format` can still change what the others allow), and an unknown preset."""
    try:
        output_options.parse(presets.resolve(fields, owner)[0])
    except OptionError as exc:
        later_formats = [] if "format" in fields else list(output_options.FORMATS)
        if all(_fails(dict(fields, format=name), owner) for name in later_formats):
            raise invalid_option(exc) from None


def _fails(fields: dict[str, str], owner: str) -> bool:
    try:
        output_options.parse(presets.resolve(fields, owner)[0])
    except OptionError:
        return True
    return False


class _FilePartWriter:
    """Follows the decoder's events: the one file part goes into storage, form fields are bounded."""

    def __init__(self, bucket: files.Bucket, video_id: str, owner: str, on_flush: Callable[[], None] | None = None):
        self.bucket, self.video_id, self.owner, self.on_flush = bucket, video_id, owner, on_flush
        self.writer: files.FileWriter | None = None
        self.stored: StoredUpload | None = None
        self.part: File | Field | None = None
        self.field_bytes = 0
        self.fields: dict[str, str] = {}
        self.field_data = bytearray()

    def on_event(self, event) -> None:
        if isinstance(event, File):
            self._open(event)
        elif isinstance(event, Field):
            self.part, self.field_bytes = event, 0
            self.field_data.clear()
        elif isinstance(event, Data):
            self._data(event)

    def _open(self, part: File) -> None:
        if self.writer is not None or self.stored is not None:
            raise ApiError(400, "too_many_files", "send exactly one file per upload")
        check_fields_so_far(self.fields, self.owner)
        self.part = part
        metadata = {"content_type": part.headers.get("Content-Type"), "original_name": part.filename}
        video_id = self.video_id
        self.writer = files.open_writer(self.bucket, video_id, safe_filename(part.filename), metadata,
                                          on_flush=lambda: self._flushed(video_id))

    def _flushed(self, video_id: str) -> None:
        upload_records.touch_upload(video_id)
        if self.on_flush is not None:
            self.on_flush()

    def _data(self, event: Data) -> None:
        if not isinstance(self.part, File):
            self.field_bytes += len(event.data)
            if self.field_bytes > MAX_FIELD_BYTES:
                raise ApiError(413, "payload_too_large", "form field too large")
            self.field_data += event.data
            if not event.more_data:
                self._field_done(self.part)
            return
        self.writer.write(event.data)
        if not event.more_data:
            self.writer.close()
            self.stored = StoredUpload(self.writer.file_id, self.writer.filename, self.writer.length,
                                       self.part.headers.get("Content-Type"), fields=self.fields,
                                       sha256=self.writer.sha256)
            self.writer = None

    def _field_done(self, part: Field) -> None:
        if part.name in self.fields:
            raise ApiError(400, "invalid_option", f"form field {part.name[:40]!r} given twice")
        if len(self.fields) >= MAX_FIELDS:
            raise ApiError(400, "invalid_option", f"more than {MAX_FIELDS} form fields")
        try:
            value = self.field_data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_option", f"form field {part.name[:40]!r} is not UTF-8 text") from None
        if part.name == "callback_url":  # checked as soon as it ends: a bad one stops the upload before the file
            value = checked_callback_url(value) or ""
        self.fields[part.name] = value

    def discard(self) -> None:
        """Remove what a failed upload wrote (best effort: if MongoDB is down, so is the damage)."""
        try:
            if self.writer is not None:
                self.writer.abort()
            if self.stored is not None:
                files.delete_file(self.bucket, self.stored.video_id)
            upload_records.forget_upload(self.video_id)
        except Exception:
            pass  # the upload record stays: the janitor removes the rest


def check_request(max_bytes: int) -> bytes:
    """The multipart boundary, once the request's type and declared size are acceptable."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       'send the video as multipart/form-data (curl -F "file=@video.mp4")')
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "malformed_multipart", "multipart body without a valid boundary")
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    return boundary.encode("latin-1")


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"upload larger than the limit of {max_bytes} bytes")


def _feed(decoder: MultipartDecoder, target: _FilePartWriter, max_bytes: int) -> None:
    """Read the body block by block into the decoder, handing its events to `target`."""
    received = 0
    while True:
        try:
            data = request.stream.read(READ_SIZE)
        except OSError:  # the client went away or stayed silent past HTTP_IDLE_TIMEOUT_SECONDS
            raise ApiError(408, "request_timeout", "the upload stopped arriving; send it again") from None
        received += len(data)
        if received > max_bytes:
            raise _too_large(max_bytes)
        decoder.receive_data(data or None)
        event = decoder.next_event()
        while not isinstance(event, (NeedData, Epilogue)):
            target.on_event(event)
            event = decoder.next_event()
        if isinstance(event, Epilogue) or not data:
            return


def receive_video(max_bytes: int, video_id: str, owner: str,
                  on_flush: Callable[[], None] | None = None) -> StoredUpload:
    """Parse the multipart body as it arrives and write its one file part into GridFS as `video_id`
    (recorded by storage/uploads.py's record_upload beforehand, see quotas.admit), for `owner` (whose
    presets an upload may name).

    Raises ApiError for anything but exactly one non-empty file; a partial file and its upload record
    are removed. On success the record stays until the caller has stored its job.
    `on_flush` is called whenever bytes reach storage (the upload is alive).
    """
    # The decoder bounds its internal buffer with this; field sizes are checked by the target.
    decoder = MultipartDecoder(check_request(max_bytes), max_form_memory_size=4 * READ_SIZE)
    target = _FilePartWriter(files.videos(), video_id, owner, on_flush)
    try:
        _feed(decoder, target, max_bytes)
        return _the_one_file(target)
    except ValueError as exc:  # the decoder's word for a broken body
        target.discard()
        raise ApiError(400, "malformed_multipart", f"malformed multipart body: {exc}") from None
    except RequestEntityTooLarge:
        target.discard()
        raise _too_large(max_bytes) from None
    except BaseException:
        target.discard()
        raise


def _the_one_file(target: _FilePartWriter) -> StoredUpload:
    if target.writer is not None:
        raise ApiError(400, "malformed_multipart", "the multipart body ended in the middle of the file")
    if target.stored is None:
        raise ApiError(400, "missing_file", 'no file in the upload; send it as -F "file=@video.mp4"')
    if target.stored.size == 0:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    # A field after the file may be bad: the stored file goes then (receive_video).
    target.stored.options, target.stored.outputs, target.stored.preset = requested(target.fields, target.owner)
    return target.stored
