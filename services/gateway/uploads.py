"""Stream a multipart upload straight into GridFS: the body is never held whole in memory or on disk."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from services.common import storage
from services.common.web import ApiError

READ_SIZE = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024  # plain form fields next to the file are small; anything bigger is abuse


def safe_filename(raw: str | None) -> str:
    """The user's file name for display and for the MP3's name: no path, no control characters."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return name[:200] or "video"


@dataclass
class StoredUpload:
    video_id: str
    filename: str
    size: int
    content_type: str | None
    sha256: str | None = None  # of the stored bytes (None where a writer could not compute it)


class _FilePartWriter:
    """Follows the decoder's events: the one file part goes into storage, form fields are bounded."""

    def __init__(self, bucket: storage.Bucket, owner: str, on_flush: Callable[[], None] | None = None):
        self.bucket, self.owner, self.on_flush = bucket, owner, on_flush
        self.writer: storage.FileWriter | None = None
        self.stored: StoredUpload | None = None
        self.part: File | Field | None = None
        self.field_bytes = 0

    def on_event(self, event) -> None:
        if isinstance(event, File):
            self._open(event)
        elif isinstance(event, Field):
            self.part, self.field_bytes = event, 0
        elif isinstance(event, Data):
            self._data(event)

    def _open(self, part: File) -> None:
        if self.writer is not None or self.stored is not None:
            raise ApiError(400, "too_many_files", "send exactly one file per upload")
        self.part = part
        metadata = {"content_type": part.headers.get("Content-Type"), "original_name": part.filename}
        video_id = storage.new_id()
        storage.record_upload(video_id, self.owner)
        self.writer = storage.open_writer(self.bucket, video_id, safe_filename(part.filename), metadata,
                                          on_flush=lambda: self._flushed(video_id))

    def _flushed(self, video_id: str) -> None:
        storage.touch_upload(video_id)
        if self.on_flush is not None:
            self.on_flush()

    def _data(self, event: Data) -> None:
        if not isinstance(self.part, File):
            self.field_bytes += len(event.data)
            if self.field_bytes > MAX_FIELD_BYTES:
                raise ApiError(413, "payload_too_large", "form field too large")
            return
        self.writer.write(event.data)
        if not event.more_data:
            self.writer.close()
            self.stored = StoredUpload(self.writer.file_id, self.writer.filename, self.writer.length,
                                       self.part.headers.get("Content-Type"), self.writer.sha256)
            self.writer = None

    def discard(self) -> None:
        """Remove what a failed upload wrote (best effort: if MongoDB is down, so is the damage)."""
        try:
            for writer in filter(None, (self.writer,)):
                writer.abort()
                storage.forget_upload(writer.file_id)
            if self.stored is not None:
                storage.delete_file(self.bucket, self.stored.video_id)
                storage.forget_upload(self.stored.video_id)
        except Exception:
            pass  # the upload record stays: the janitor removes the rest


def _check_request(max_bytes: int) -> bytes:
    """The multipart boundary, once the request's type and declared size are acceptable."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", 'send the video as multipart/form-data (curl -F "file=@video.mp4")')
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
        data = request.stream.read(READ_SIZE)
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


def receive_video(max_bytes: int, owner: str, on_flush: Callable[[], None] | None = None) -> StoredUpload:
    """Parse the multipart body as it arrives and write its one file part into GridFS.

    Raises ApiError for anything but exactly one non-empty file; a partial file is removed.
    The upload stays recorded (storage.record_upload) until the caller has stored its job.
    `on_flush` is called whenever bytes reach storage (the upload is alive).
    """
    # The decoder bounds its internal buffer with this; field sizes are checked by the target.
    decoder = MultipartDecoder(_check_request(max_bytes), max_form_memory_size=4 * READ_SIZE)
    target = _FilePartWriter(storage.videos(), owner, on_flush)
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
    return target.stored
