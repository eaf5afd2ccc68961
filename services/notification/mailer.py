"""Compose and send the notification emails over SMTP."""
from __future__ import annotations

import smtplib
from datetime import datetime, timezone
from email.message import EmailMessage

from services.common import config, outputs, tls
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
        several = len(outputs.results_of(job)) > 1
        message["Subject"] = f"Your {'files are' if several else 'MP3 is'} ready: {name}"
        message.set_content(
            f"Your {'files' if several else 'MP3'} of {name} {'are' if several else 'is'} ready.\n\n"
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
    results = outputs.results_of(job)
    if len(results) <= 1:
        return f"Download it (no login needed; this link works until {until}):\n{link}"
    listed = "\n\n".join(_result_lines(job, result) for result in results)
    return f"Your {len(results)} files (no login needed; these links work until {until}):\n\n{listed}"


def _result_lines(job: Job, result: dict) -> str:
    """One result of several: its name, size and signed link."""
    size = f" ({readable_size(result['size'])})" if result.get("size") is not None else ""
    return f"{result.get('name') or 'audio'}{size}\n{signed_link(job, result['mp3_id'])}"


def readable_size(nbytes: int) -> str:
    if nbytes < 1000:
        return f"{nbytes} bytes"
    return f"{nbytes / 1000:.1f} KB" if nbytes < 1_000_000 else f"{nbytes / 1_000_000:.1f} MB"


def send(message: EmailMessage) -> None:
    host, port = config.env("SMTP_HOST"), config.env_int("SMTP_PORT")
    timeout = config.env_float("SMTP_TIMEOUT_SECONDS")
    if config.env_bool("SMTP_SSL"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls.client_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if config.env_bool("SMTP_STARTTLS") and not config.env_bool("SMTP_SSL"):
            smtp.starttls(context=tls.client_context())
        if config.env("SMTP_USER"):
            smtp.login(config.env("SMTP_USER"), config.env("SMTP_PASSWORD"))
        smtp.send_message(message)
