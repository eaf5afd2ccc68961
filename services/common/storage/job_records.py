"""Jobs as stored: create, read, claim, lease, finish, cancel, expire, delete; the outbox's and the
janitor's queries; listings and what a user's jobs hold (quota usage).

Every status write is a conditional update whose filter comes from the transition table
(services/common/jobs.py `TRANSITIONS`, through `status_guard`): a move the table does not list
matches nothing, so the table is the one place that says which moves exist.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pymongo import ReturnDocument
from pymongo.collection import Collection

from ..jobs import ENDED, Job, Status, may_move, sources_of
from . import notification_ledger, tombstones
from .connection import records

# A match on job fields by equality only, e.g. {"_id": job_id, "owner": user_id}.
JobMatch = dict[str, str]
# Newest first, ties (jobs created in the same instant) by id: a total order, so pages never overlap
LISTING_ORDER = [("created", -1), ("_id", -1)]
LISTING_INDEXES = ([("owner", 1), ("created", -1)], [("owner", 1), ("status", 1), ("created", -1)])


class IllegalMove(ValueError):
    """A status change the transition table does not allow."""


def collection() -> Collection:
    return records().jobs


def ensure_indexes() -> None:
    jobs = collection()
    # GET /jobs: an owner's jobs by creation, all of them or of some statuses. Not `_id` as a last key
    # (the MongoDB stand-in cannot index it in a compound index): list_jobs breaks ties itself.
    for keys in LISTING_INDEXES:
        jobs.create_index(keys)
    jobs.create_index([("published", 1), ("created", 1)])
    jobs.create_index("mp3_id")
    jobs.create_index("ended_at")
    jobs.create_index("content_key")
    jobs.create_index("sha256")  # reuse per output (dedup) finds done jobs of the same video


def status_guard(target: Status, current: Status | None = None) -> dict:
    """The status part of the filter of a move to `target`: from `current` (IllegalMove unless the table
    allows it), or from any status the table lets move to `target`."""
    if current is None:
        return {"status": {"$in": sources_of(target)}}
    if not may_move(current, target):
        raise IllegalMove(f"{current} -> {target}")
    return {"status": str(current)}


def _equal(match: JobMatch) -> dict:
    # Operators ($ne, $in, ...) stay inside this module: a caller's match is plain values.
    if any(isinstance(value, dict) for value in match.values()):
        raise ValueError("a job match compares values only")
    return dict(match)


def _job(doc: dict | None) -> Job | None:
    return Job.from_doc(doc) if doc else None


# ---------------------------------------------------------------- one job


def create_job(job: Job, status: Status = Status.QUEUED) -> Job:
    """Store a new job: queued, fetching (a URL import) or done at once (a reused result: dedup).
    errors.DuplicateRecord if its id exists."""
    job.created = time.time()
    job.status, job.times, job.rev = status, {str(status): job.created}, 1
    if status in ENDED:
        job.ended_at = job.created
    collection().insert_one(job.to_doc())
    return job


def get_job(job_id: str) -> Job | None:
    return _job(collection().find_one({"_id": job_id}))


def find_job(match: JobMatch) -> Job | None:
    return _job(collection().find_one(_equal(match)))


def job_revisions(matches: list[JobMatch]) -> list[int | None]:
    """The `rev` of the job matching each match (None: no such job), in order, read alone from one read of
    all their jobs (each match names an `_id`): what conditional polls compare before building any view."""
    wanted = [_equal(match) for match in matches]
    fields = {name: 1 for match in wanted for name in match}
    docs = {doc["_id"]: doc for doc in collection().find({"_id": {"$in": list({m["_id"] for m in wanted})}},
                                                          dict(fields, rev=1))}
    return [_revision_if_matching(docs.get(match["_id"]), match) for match in wanted]


def _revision_if_matching(doc: dict | None, match: dict) -> int | None:
    if doc is None or any(doc.get(name) != value for name, value in match.items()):
        return None
    return doc.get("rev", 0)


@dataclass(frozen=True)
class JobFilter:
    """Which of an owner's jobs a listing shows: of these statuses (all if empty), created in the open
    interval (created_after, created_before) (unix seconds; None: unbounded)."""

    statuses: tuple[str, ...] = ()
    created_after: float | None = None
    created_before: float | None = None


def list_jobs(owner: str, shown: JobFilter, limit: int, offset: int = 0,
              after: tuple[float, str] | None = None) -> list[Job]:
    """One page of the owner's jobs in LISTING_ORDER: from `offset`, or those after the job at `after`
    ((created, id) of a page's last job: jobs created since do not shift the pages, unlike an offset).

    The index orders by `created` only; ties are ordered here: the page's first and last `created` values
    have their whole group of jobs read (a handful at most), so no tie is cut at a page's edge."""
    query = _listing_query(owner, shown)
    ahead: list[dict] = []  # the rest of the cursor's own group, ahead of every older job
    if after is not None:
        created, job_id = after
        ahead = _ordered(collection().find(_created(query, {"$eq": created}) | {"_id": {"$lt": job_id}}))
        query = _created(query, {"$lt": created})
    fetched = list(collection().find(query).sort("created", -1).skip(offset).limit(limit))
    if not fetched:
        return [Job.from_doc(doc) for doc in ahead[:limit]]
    top, edge = fetched[0]["created"], fetched[-1]["created"]
    # the jobs of the top group that earlier pages (offset) showed
    shown_before = offset - collection().count_documents(_created(query, {"$gt": top})) if offset else 0
    inner = [doc for doc in fetched if doc["created"] not in (top, edge)]
    groups = list(collection().find(_created(query, {"$in": [top, edge]})))
    page = ahead + _ordered(inner + groups)[shown_before:]
    return [Job.from_doc(doc) for doc in page[:limit]]


def _listing_query(owner: str, shown: JobFilter) -> dict:
    query: dict = {"owner": owner}
    if shown.statuses:
        query["status"] = {"$in": list(shown.statuses)}
    bounds = {op: ts for op, ts in (("$gt", shown.created_after), ("$lt", shown.created_before)) if ts is not None}
    return _created(query, bounds) if bounds else query


def _created(query: dict, bounds: dict) -> dict:
    """`query` with `bounds` on `created` added to its own (the narrower bound of each kind wins)."""
    merged = dict(query.get("created", {}))
    for op, ts in bounds.items():
        narrower = {"$gt": max, "$lt": min}.get(op)
        merged[op] = narrower(merged[op], ts) if narrower and op in merged else ts
    return dict(query, created=merged)


def _ordered(docs) -> list[dict]:
    return sorted(docs, key=lambda doc: (doc["created"], doc["_id"]), reverse=True)


def _holding_file(file_id: str) -> dict:
    """The filter of jobs that hold file `file_id`: as their (first) result, any result, or a waveform."""
    return {"$or": [{"mp3_id": file_id}, {"results.mp3_id": file_id}, {"results.waveform_id": file_id}]}


def job_holding_file(file_id: str, owner: str | None = None, status: Status | None = None) -> Job | None:
    """A job (of `owner`'s, in `status`, when given) one of whose results or waveforms is `file_id`."""
    query = _holding_file(file_id)
    if owner is not None:
        query["owner"] = owner
    if status is not None:
        query["status"] = str(status)
    return _job(collection().find_one(query))


def job_of_video(video_id: str) -> Job | None:
    return _job(collection().find_one({"video_id": video_id}))


def claim_video_removal(job_id: str) -> bool:
    """Take the removal of a job's video (retention); False when another janitor took it."""
    result = collection().update_one({"_id": job_id, "video_removed": {"$in": [False, None]}},
                                     {"$set": {"video_removed": True}})
    return result.matched_count == 1


def clear_pending_result(job_id: str, result_id: str) -> bool:
    """Take the removal of a half-written result that no converter holds any more."""
    result = collection().update_one({"_id": job_id, "pending_mp3_id": result_id, "status": {"$ne": Status.CONVERTING}},
                                     {"$set": {"pending_mp3_id": None}})
    return result.matched_count == 1


def record_webhook(job_id: str, attempt: dict) -> None:
    """Show the last webhook delivery attempt on the job (a change its owner sees: rev moves)."""
    collection().update_one({"_id": job_id}, {"$set": {"webhook": attempt}, "$inc": {"rev": 1}})


def delete_job(job_id: str) -> None:
    """Remove the job and the records of its emails (its files are the caller's to remove first),
    leaving a tombstone: a message still on its way for it is then dropped, not taken for poison."""
    tombstones.record_deletion(job_id)
    notification_ledger.forget_job(job_id, ENDED)
    collection().delete_one({"_id": job_id})


# ---------------------------------------------------------------- a converter's hold on a job


def claim_job(job_id: str, worker: str, lease_seconds: float, result_id: str | None = None) -> Job | None:
    """Take a queued job, or a converting one whose previous worker's lease ran out. With `result_id`, the
    id this attempt's output will have is recorded in the same write (one write less per job), and the
    job comes back as it was before the claim: its `pending_mp3_id` is a dead attempt's, to remove."""
    now = time.time()
    fields = {"status": Status.CONVERTING, "worker": worker, "lease_until": now + lease_seconds,
              "times.converting": now, "progress": None, "eta_seconds": None}
    doc = collection().find_one_and_update(
        {"_id": job_id, **status_guard(Status.CONVERTING), "lease_until": {"$lt": now}},
        {"$set": dict(fields, pending_mp3_id=result_id) if result_id else fields, "$inc": {"attempts": 1, "rev": 1}},
        return_document=ReturnDocument.BEFORE if result_id else ReturnDocument.AFTER,
    )
    return _job(doc)


def _held(job_id: str, worker: str) -> dict:
    return {"_id": job_id, "worker": worker, "status": Status.CONVERTING}


def renew_lease(job_id: str, worker: str, lease_seconds: float) -> bool:
    result = collection().update_one(_held(job_id, worker), {"$set": {"lease_until": time.time() + lease_seconds}})
    return result.matched_count == 1


def holds(job_id: str, worker: str) -> bool:
    """Whether `worker` still holds the job (not cancelled, deleted or taken over)."""
    return collection().find_one(_held(job_id, worker), {"_id": 1}) is not None


def reserve_output(job_id: str, worker: str, nbytes: int) -> bool:
    """Record the bytes the job's result may take (its owner's usage counts them while it converts)."""
    return collection().update_one(_held(job_id, worker), {"$set": {"output_reserved": nbytes}}).matched_count == 1


def set_progress(job_id: str, worker: str, progress: float, eta_seconds: float | None) -> None:
    collection().update_one(_held(job_id, worker), {"$set": {"progress": progress, "eta_seconds": eta_seconds},
                                                    "$inc": {"rev": 1}})


# ---------------------------------------------------------------- a URL import's fetch (fetching → queued)


def _fetch_held(job_id: str, worker: str) -> dict:
    return {"_id": job_id, "worker": worker, "status": Status.FETCHING}


def claim_fetch(job_id: str, worker: str, lease_seconds: float) -> Job | None:
    """Take a fetching job whose fetch nobody holds (or whose fetcher's lease ran out); the job as taken."""
    now = time.time()
    doc = collection().find_one_and_update(
        {"_id": job_id, **status_guard(Status.FETCHING, Status.FETCHING), "lease_until": {"$lt": now}},
        {"$set": {"worker": worker, "lease_until": now + lease_seconds}, "$inc": {"attempts": 1}},
        return_document=ReturnDocument.AFTER)
    return _job(doc)


def fetch_progress(job_id: str, worker: str, fetch: dict, lease_seconds: float) -> bool:
    """Show the fetch's progress (`{"bytes", "total"}`) and renew the fetcher's lease; False once the job
    is no longer this fetcher's (cancelled, deleted, taken over)."""
    update = {"$set": {"fetch": fetch, "lease_until": time.time() + lease_seconds}, "$inc": {"rev": 1}}
    return collection().update_one(_fetch_held(job_id, worker), update).matched_count == 1


def release_fetch(job_id: str, worker: str) -> bool:
    """Give a fetch back (it will be retried) so the next attempt need not wait for the lease."""
    result = collection().update_one(_fetch_held(job_id, worker), {"$set": {"lease_until": 0.0, "fetch": None},
                                                                   "$inc": {"rev": 1}})
    return result.matched_count == 1


def fetched(job_id: str, worker: str, size: int, sha256: str, content_type: str | None) -> bool:
    """The source is stored: fetching → queued, for the converter to claim."""
    query = {**_fetch_held(job_id, worker), **status_guard(Status.QUEUED, Status.FETCHING)}
    now = time.time()
    update = {"status": str(Status.QUEUED), "size": size, "sha256": sha256, "content_type": content_type,
              "fetch": None, "worker": None, "lease_until": 0.0, f"times.{Status.QUEUED}": now}
    return collection().update_one(query, {"$set": update, "$inc": {"rev": 1}}).matched_count == 1


# ---------------------------------------------------------------- status moves


def finish_job(job_id: str, worker: str | None, status: Status, **fields) -> bool:
    """Move a job to done or failed; with `worker`, only while that worker holds it."""
    query: dict = {"_id": job_id, **status_guard(Status(status))}
    if worker is not None:
        query["worker"] = worker
    now = time.time()
    update = dict(fields, status=status, lease_until=0.0, ended_at=now, **{f"times.{status}": now})
    return collection().update_one(query, {"$set": update, "$inc": {"rev": 1}}).matched_count == 1


def cancel_job(match: JobMatch) -> Job | None:
    """Cancel the active job matching `match`; its converter notices and stops. None if not active."""
    now = time.time()
    doc = collection().find_one_and_update(
        dict(_equal(match), **status_guard(Status.CANCELLED)),
        {"$set": {"status": Status.CANCELLED, "lease_until": 0.0, "progress": None, "eta_seconds": None,
                  "ended_at": now, "times.cancelled": now}, "$inc": {"rev": 1}},
        return_document=ReturnDocument.AFTER)
    return _job(doc)


def release_job(job_id: str, worker: str) -> bool:
    """Give a job back (it will be retried) so the next attempt need not wait for the lease."""
    query = dict(_held(job_id, worker), **status_guard(Status.QUEUED, Status.CONVERTING))
    result = collection().update_one(query, {"$set": {"status": Status.QUEUED, "lease_until": 0.0, "progress": None},
                                             "$inc": {"rev": 1}})
    return result.matched_count == 1


def expire_job(job_id: str, status: Status) -> bool:
    """Retention removed the job's last file: it turns `expired` (from `status`, so two janitors agree)."""
    query = {"_id": job_id, **status_guard(Status.EXPIRED, Status(status))}
    result = collection().update_one(query, {"$set": {"status": Status.EXPIRED, "times.expired": time.time()},
                                             "$inc": {"rev": 1}})
    return result.matched_count == 1


def requeue_unshared(job_id: str) -> bool:
    """A reused job (done at once with a shared result) whose result went before it could pin it: back to
    queued, to convert its own video."""
    query = {"_id": job_id, "reused": True, **status_guard(Status.QUEUED, Status.DONE)}
    result = collection().update_one(query, {"$set": {
        "status": str(Status.QUEUED), "mp3_id": None, "results": [], "reused": False, "mp3_released": False,
        "audio_seconds": None, "ended_at": None, "times": {str(Status.QUEUED): time.time()}}, "$inc": {"rev": 1}})
    return result.matched_count == 1


# ---------------------------------------------------------------- shared results (dedup)


def reuse_candidates(sha256: str, owner: str | None, limit: int = 20) -> list[Job]:
    """Done jobs of the same video (of `owner`'s, if given) whose results are still in use, newest first:
    where a new job may find each of its outputs already made (dedup per output)."""
    query = {"sha256": sha256, "status": str(Status.DONE), "mp3_id": {"$ne": None},
             "mp3_released": {"$in": [False, None]}}
    if owner is not None:
        query["owner"] = owner
    return [Job.from_doc(doc) for doc in collection().find(query).sort("created", -1).limit(limit)]


def reusable_job(content_key: str, owner: str | None) -> Job | None:
    """A done job with content `content_key` whose result is still in use (of `owner`'s, if given)."""
    query = {"content_key": content_key, "status": str(Status.DONE), "mp3_id": {"$ne": None},
             "mp3_released": {"$in": [False, None]}}
    if owner is not None:
        query["owner"] = owner
    return _job(collection().find_one(query))


def other_user_of(result_id: str, job_id: str) -> Job | None:
    """A done job other than `job_id` that still uses the result file `result_id`."""
    return _job(collection().find_one(dict(_holding_file(result_id), status=str(Status.DONE), _id={"$ne": job_id},
                                           mp3_released={"$in": [False, None]})))


def mark_result_released(job_id: str) -> None:
    collection().update_one({"_id": job_id}, {"$set": {"mp3_released": True}})


# ---------------------------------------------------------------- the outbox


def unpublished(older_than: float, limit: int = 100) -> list[Job]:
    """Stored jobs whose message the broker has not confirmed, oldest first."""
    found = collection().find({"published": False, "created": {"$lt": older_than}}).sort("created", 1).limit(limit)
    return [Job.from_doc(doc) for doc in found]


def claim_publishing(job_id: str, lease_seconds: float) -> Job | None:
    """Take an unpublished job, unless another gateway is publishing it now."""
    now = time.time()
    doc = collection().find_one_and_update({"_id": job_id, "published": False, "outbox_lease": {"$lt": now}},
                                           {"$set": {"outbox_lease": now + lease_seconds}},
                                           return_document=ReturnDocument.AFTER)
    return _job(doc)


def mark_published(job_id: str) -> None:
    collection().update_one({"_id": job_id}, {"$set": {"published": True}})


def count_unpublished() -> int:
    return collection().count_documents({"published": False})


# ---------------------------------------------------------------- the janitor


def videos_due(cutoff: float) -> list[Job]:
    """Jobs that ended before `cutoff` and still have their video."""
    return [Job.from_doc(doc) for doc in collection().find({"ended_at": {"$lt": cutoff},
                                                            "video_removed": {"$in": [False, None]}})]


def done_before(cutoff: float) -> list[Job]:
    return [Job.from_doc(doc) for doc in collection().find({"status": Status.DONE, "ended_at": {"$lt": cutoff}})]


def ended_with_pending_result() -> list[Job]:
    """Ended jobs that still name a half-written result."""
    query = {"pending_mp3_id": {"$ne": None}, "status": {"$in": [str(s) for s in ENDED]}}
    return [Job.from_doc(doc) for doc in collection().find(query)]


# ---------------------------------------------------------------- quota usage


@dataclass(frozen=True)
class Holding:
    """What one job of a user holds, as the quotas count it."""

    job_id: str
    status: str
    video_id: str | None
    result_id: str | None
    output_reserved: int
    other_files: tuple[str, ...] = ()  # every other result and waveform of a job with several

    @property
    def result_ids(self) -> list[str]:
        return ([self.result_id] if self.result_id else []) + [f for f in self.other_files if f != self.result_id]


def holdings(owner: str) -> list[Holding]:
    fields = {"status": 1, "video_id": 1, "mp3_id": 1, "output_reserved": 1, "results": 1}
    return [Holding(doc["_id"], doc.get("status", ""), doc.get("video_id"), doc.get("mp3_id"),
                    doc.get("output_reserved") or 0, _other_files(doc))
            for doc in collection().find({"owner": owner}, fields)]


def _other_files(doc: dict) -> tuple[str, ...]:
    return tuple(result[key] for result in doc.get("results") or [] for key in ("mp3_id", "waveform_id")
                 if result.get(key) and result[key] != doc.get("mp3_id"))
