"""The soak's verdicts, from the stored state once everything has settled: MongoDB's jobs and GridFS
results, the converter's log, the mail folder and the webhook receivers' logs.

Every accepted job (every 202) must end `done` or `failed` with a reason (none lost), be converted at
most once (one GridFS result per job, one "job converted" log line), get exactly one email, and a
normal user's job exactly one webhook id; the normal users' job latency p95 (upload accepted -> end,
as converter_job_e2e_latency_seconds measures it) must be within the SLO the alerts use.
"""
from __future__ import annotations

import json
import time

SLO_SECONDS = 300  # monitoring/SLO.md, recording.yml: 95 % of jobs ready within 300 s of the upload
SLO_QUANTILE = 0.95
FINAL = ("done", "failed")


def wait_settled(stack, job_ids: list[str], timeout: float) -> dict[str, dict]:
    """The jobs' documents once all are final or the time is up (the verdicts judge either way)."""
    deadline = time.monotonic() + timeout
    while True:
        docs = _docs(stack, job_ids)
        if all(docs.get(j, {}).get("status") in FINAL for j in job_ids) or time.monotonic() > deadline:
            return docs
        time.sleep(1)


def _docs(stack, job_ids: list[str]) -> dict[str, dict]:
    try:
        return {d["_id"]: d for d in stack.jobs().find({"_id": {"$in": list(job_ids)}})}
    except Exception:  # MongoDB may still be coming back: ask again
        return {}


def wait_until_counted(count, expected: set[str], timeout: float) -> None:
    """Until `count()` (job id -> number) covers `expected`, or the time is up; then a little more,
    so that a duplicate on its way arrives before the count."""
    deadline = time.monotonic() + timeout
    while not expected <= {j for j, n in count().items() if n} and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)


def converted_log_lines(stack) -> dict[str, int]:
    """"job converted" lines per job in the converter's log (every life of the process appends to it)."""
    counts: dict[str, int] = {}
    for line in stack.log("converter").splitlines():
        if '"job converted"' in line:
            try:
                job_id = json.loads(line).get("job_id")
            except ValueError:
                continue
            counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def webhook_ids(received: list[tuple[dict, bytes]]) -> dict[str, set[str]]:
    """Distinct webhook-ids per job among a receiver's requests (retries repeat an id: allowed)."""
    ids: dict[str, set[str]] = {}
    for headers, body in received:
        try:
            job_id = json.loads(body)["data"]["job_id"]
        except (ValueError, KeyError, TypeError):
            job_id = "?"
        ids.setdefault(job_id, set()).add(headers.get("webhook-id", ""))
    return ids


def mail_arrivals(stack) -> dict[str, float]:
    """When the first email of each job arrived (the Maildir file's mtime: the SMTP server wrote it then)."""
    import email
    import email.policy

    first: dict[str, float] = {}
    for path in stack.maildir.glob("*") if stack.maildir.exists() else []:
        headers = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        job_id, at = headers["X-Vid2mp3-Job"], path.stat().st_mtime
        first[job_id] = min(at, first.get(job_id, at))
    return first


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def latency(doc: dict) -> float | None:
    """Upload accepted -> final status, in seconds (None while not final)."""
    end = doc.get("ended_at")
    return end - doc["created"] if end and doc.get("created") else None


def judge(stack, normal: list[str], hostile: list[str], webhooks: dict[str, set[str]]) -> dict:
    """Figures and verdicts; `webhooks`: the good receiver's distinct ids per job (normal users' jobs)."""
    accepted = normal + hostile
    docs = _docs(stack, accepted)
    files: dict[str, int] = {}
    for f in stack.mp3_files():
        metadata = f.get("metadata") or {}
        if metadata.get("kind") == "waveform":  # a result's waveform lies beside it in the results bucket
            continue
        files[metadata.get("job_id")] = files.get(metadata.get("job_id"), 0) + 1
    converted = converted_log_lines(stack)
    mails = stack.mails()
    status = {j: docs.get(j, {}).get("status") for j in accepted}
    done = [j for j in accepted if status[j] == "done"]
    failed = [j for j in accepted if status[j] == "failed" and docs[j].get("reason")]
    finished = done + failed
    latencies = [x for x in (latency(docs[j]) for j in normal if j in docs) if x is not None]
    p95 = percentile(latencies, SLO_QUANTILE)
    arrivals = mail_arrivals(stack)
    # Job end -> its email in the mail folder: what a dripping webhook of another tenant may delay.
    mail_delays = [arrivals[j] - docs[j]["ended_at"] for j in normal if j in arrivals and docs[j].get("ended_at")]
    problems = {
        "lost": [j for j in accepted if j not in finished],
        "converted_twice": sorted({j for j in accepted if files.get(j, 0) > 1 or converted.get(j, 0) > 1}),
        "done_without_one_mp3": [j for j in done if files.get(j, 0) != 1 and not docs[j].get("reused")],
        "no_email": [j for j in finished if mails.get(j, 0) == 0],
        "duplicate_emails": [j for j in finished if mails.get(j, 0) > 1],
        "no_webhook": [j for j in normal if j in finished and not webhooks.get(j)],
        "several_webhook_ids": [j for j in normal if len(webhooks.get(j, ())) > 1],
    }
    figures = {
        "accepted": len(accepted), "accepted_normal": len(normal), "accepted_hostile": len(hostile),
        "done": len(done), "failed_with_reason": len(failed),
        "failed_reasons": _reasons(docs, failed),
        "emails": sum(mails.get(j, 0) for j in accepted),
        "webhook_ids_normal": sum(len(webhooks.get(j, ())) for j in normal),
        "latency_p50": percentile(latencies, 0.5), "latency_p95": p95, "latency_max": max(latencies, default=None),
        "slo_seconds": SLO_SECONDS,
        "email_delay_p95": percentile(mail_delays, 0.95), "email_delay_max": max(mail_delays, default=None),
    } | {name: len(ids) for name, ids in problems.items()}
    verdicts = {
        "none lost (every 202 ends done, or failed with a reason)": not problems["lost"],
        "none converted twice (GridFS results, converter log)": not problems["converted_twice"],
        "every done job has exactly one stored result": not problems["done_without_one_mp3"],
        "exactly one email per finished job": not problems["no_email"] and not problems["duplicate_emails"],
        "one webhook id per normal user's job": not problems["no_webhook"] and not problems["several_webhook_ids"],
        f"normal users' job latency p95 <= {SLO_SECONDS} s (SLO)": p95 is not None and p95 <= SLO_SECONDS,
    }
    return {"figures": figures, "verdicts": verdicts, "problems": problems,
            "latencies": [(docs[j]["created"], latency(docs[j])) for j in normal if j in docs and latency(docs[j])]}


def _reasons(docs: dict, failed: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for j in failed:
        counts[docs[j]["reason"]] = counts.get(docs[j]["reason"], 0) + 1
    return counts
