"""The two messages of a job's walk: their shapes, how a delivery is read back into one, and the one
function that publishes each kind (ARCHITECTURE.md, "Messages", lists their queues and consumers).

- `video` (VIDEO_QUEUE): a stored job waiting for a converter (publish_video: the gateway's upload
  path and outbox);
- `mp3` (MP3_QUEUE): a job that ended, for its email and webhook (publish_finished: the converter
  for done and failed, the gateway for cancelled and for a done-at-once reused job).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import config
from .jobs import ENDED, Status
from .messaging import Delivery, PermanentError, Publisher


@dataclass(frozen=True)
class VideoMessage:
    """On the `video` queue: a stored job waiting for a converter."""

    job_id: str

    def body(self) -> dict:
        return {"job_id": self.job_id}

    @property
    def message_id(self) -> str:
        return self.job_id

    @classmethod
    def parse(cls, delivery: Delivery) -> "VideoMessage":
        return cls(_job_id_of(delivery.json()))


@dataclass(frozen=True)
class FinishedMessage:
    """On the `mp3` queue: a job that ended (done, failed or cancelled), for its email or webhook."""

    job_id: str
    status: Status

    def body(self) -> dict:
        return {"job_id": self.job_id, "status": str(self.status)}

    @property
    def message_id(self) -> str:  # the same for every announcement of one outcome: consumers dedupe by it
        return f"{self.job_id}:{self.status}"

    @classmethod
    def parse(cls, delivery: Delivery) -> "FinishedMessage":
        body = delivery.json()
        if body.get("status") not in ENDED:
            raise PermanentError("message needs a status of done, failed or cancelled")
        return cls(_job_id_of(body), Status(body["status"]))


def _job_id_of(body: dict) -> str:
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        raise PermanentError("message has no valid job_id")
    return job_id


def publish_video(publisher: Publisher, job_id: str, carrier: dict | None = None) -> None:
    """Hand a stored job to the converters; `carrier` is the upload's trace context (a late publish)."""
    message = VideoMessage(job_id)
    publisher.publish(config.env("VIDEO_QUEUE"), message.body(), carrier=carrier, message_id=message.message_id)


def publish_finished(publisher: Publisher, job_id: str, status: Status, carrier: dict | None = None) -> None:
    """Announce a job's end to notification (its email, its webhook)."""
    message = FinishedMessage(job_id, status)
    publisher.publish(config.env("MP3_QUEUE"), message.body(), carrier=carrier, message_id=message.message_id)
