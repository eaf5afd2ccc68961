"""Stream a multipart upload straight into GridFS: the body is never held whole in memory or on disk."""
from __future__ import annotations

import os
import re
import unicodedata

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


class StoredUpload:
    def __init__(self, video_id: str, filename: str, size: int, content_type: str | None):
        self.video_id, self.filename, self.size, self.content_type = video_id, filename, size, content_type


def receive_video(max_bytes: int) -> StoredUpload:
    """Parse the multipart body as it arrives and write its one file part into GridFS.

    Raises ApiError for anything but exactly one non-empty file; a partial file is removed.
    """
    mimetype, options = request.mimetype, request.mimetype_params
    if mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", 'send the video as multipart/form-data (curl -F "file=@video.mp4")')
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "malformed_multipart", "multipart body without a valid boundary")
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"upload larger than the limit of {max_bytes} bytes")

    # The decoder bounds its internal buffer with this; field sizes are checked below.
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_form_memory_size=4 * READ_SIZE)
    bucket = storage.videos()
    upload = None
    stored: StoredUpload | None = None
    field_bytes = received = 0
    part = None
    try:
        while True:
            data = request.stream.read(READ_SIZE)
            received += len(data)
            if received > max_bytes:
                raise ApiError(413, "payload_too_large", f"upload larger than the limit of {max_bytes} bytes")
            decoder.receive_data(data or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, File):
                    if upload is not None or stored is not None:
                        raise ApiError(400, "too_many_files", "send exactly one file per upload")
                    part = event
                    video_id = storage.new_id()
                    filename = safe_filename(event.filename)
                    upload = bucket.open_upload_stream_with_id(
                        video_id, filename,
                        metadata={"content_type": event.headers.get("Content-Type"), "original_name": event.filename})
                elif isinstance(event, Field):
                    part = event
                    field_bytes = 0
                elif isinstance(event, Data):
                    if isinstance(part, File):
                        upload.write(event.data)
                        if not event.more_data:
                            upload.close()
                            stored = StoredUpload(upload._id, upload.filename, upload.length,
                                                  part.headers.get("Content-Type"))
                            upload = None
                    else:
                        field_bytes += len(event.data)
                        if field_bytes > MAX_FIELD_BYTES:
                            raise ApiError(413, "payload_too_large", "form field too large")
                event = decoder.next_event()
            if isinstance(event, Epilogue) or not data:
                break
        if upload is not None:
            raise ApiError(400, "malformed_multipart", "the multipart body ended in the middle of the file")
        if stored is None:
            raise ApiError(400, "missing_file", 'no file in the upload; send it as -F "file=@video.mp4"')
        if stored.size == 0:
            storage.delete_file(bucket, stored.video_id)
            raise ApiError(400, "empty_file", "the uploaded file is empty")
        return stored
    except ValueError as exc:  # the decoder's word for a broken body
        _discard(bucket, upload, stored)
        raise ApiError(400, "malformed_multipart", f"malformed multipart body: {exc}") from None
    except RequestEntityTooLarge:
        _discard(bucket, upload, stored)
        raise ApiError(413, "payload_too_large", f"upload larger than the limit of {max_bytes} bytes") from None
    except BaseException:
        _discard(bucket, upload, stored)
        raise


def _discard(bucket, upload, stored: StoredUpload | None) -> None:
    """Remove what a failed upload wrote (best effort: if MongoDB is down, so is the damage)."""
    try:
        if upload is not None:
            upload.abort()
        if stored is not None:
            storage.delete_file(bucket, stored.video_id)
    except Exception:
        pass


def stem(filename: str) -> str:
    return os.path.splitext(filename)[0] or "audio"
