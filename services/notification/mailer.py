"""Compose and send the notification emails over SMTP."""
from __future__ import annotations

import smtplib
import ssl
from datetime import datetime, timezone
from email.message import EmailMessage

from services.common import config
from services.common.job_view import public_url, signed_link, status_path
from services.common.jobs import Job, Status


def compose(job: Job, status: Status) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.env("MAIL_FROM")
    message["To"] = job.owner_email
    # A stable Message-ID per job and outcome lets mail systems drop a rare duplicate too.
    message["Message-ID"] = f"<{job.id}.{status}@vid2mp3.local>"
    message["X-Vid2mp3-Job"] = job.id
    name = job.filename or "your video"
    if status == Status.DONE:
        message["Subject"] = f"Your MP3 is ready: {name}"
        message.set_content(
            f"Your MP3 of {name} is ready.\n\n"
            f"{_download_lines(job)}\n\n"
            f"Job id: {job.id}\n"
            f"MP3 id: {job.mp3_id}\n"
        )
    else:
        message["Subject"] = f"Your conversion failed: {name}"
        message.set_content(
            f"We could not convert {name}.\n\n"
            f"Job id: {job.id}\n"
            f"Reason: {job.reason or 'unknown'}\n"
            f"Status: {public_url(status_path(job.id))}\n"
        )
    return message


def _download_lines(job: Job) -> str:
    link = signed_link(job)
    if link is None:  # no end time recorded (an old job): its status page still leads to the file
        return f"Download it from: {public_url(status_path(job.id))}"
    until = datetime.fromtimestamp(job.expires_at(), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Download it (no login needed; this link works until {until}):\n{link}"


def send(message: EmailMessage) -> None:
    host, port = config.env("SMTP_HOST"), config.env_int("SMTP_PORT")
    timeout = config.env_float("SMTP_TIMEOUT_SECONDS")
    context = ssl.create_default_context()
    if config.env_bool("SMTP_SSL"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if config.env_bool("SMTP_STARTTLS") and not config.env_bool("SMTP_SSL"):
            smtp.starttls(context=context)
        if config.env("SMTP_USER"):
            smtp.login(config.env("SMTP_USER"), config.env("SMTP_PASSWORD"))
        smtp.send_message(message)
