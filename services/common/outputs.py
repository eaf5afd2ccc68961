"""Several outputs from one video: what an upload asks for (`outputs`) and what a done job holds (its
result files and their waveforms).

Asking: the form field or Upload-Metadata key `outputs` is a JSON array of objects of option fields
(the same names and values as the form fields), e.g.
`[{"format":"mp3","bitrate":"192k"},{"format":"opus","bitrate":"64k"},{"format":"flac"}]`. Option fields
given beside `outputs` are defaults that each entry overrides. `requested_outputs` is the one reader:
multipart and tus uploads, URL imports and presets all call it.

Holding: a done job's `results` (services/common/jobs.py RESULT_FIELDS), or for a job done before
there were several outputs, one result made from its `mp3_id`. Every file a job holds is a result or
a result's waveform; both are downloaded, shared (dedup) and removed alike.
"""
from __future__ import annotations

import json
from typing import Mapping

from . import config, jobs
from .jobs import Job
from .options import Options, OptionError, fields_named, parse

FIELD = "outputs"  # the form field / metadata key
WAVEFORM_MEDIA_TYPE = "application/json"
MAX_OUTPUTS_CHARS = 16 * 1024  # a few option sets; anything longer is abuse


def asks_for_outputs(fields: Mapping[str, str]) -> bool:
    return str(fields.get(FIELD) or "").strip() != ""


def requested_outputs(fields: Mapping[str, str]) -> list[Options]:
    """Every output `fields` ask for, in order: the `outputs` entries (each over the top-level option
    fields as defaults), or without `outputs` the one output of the top-level fields. OptionError names
    the bad field as `outputs[i].name` (0-based) or `outputs` for a malformed list."""
    if not asks_for_outputs(fields):
        return [parse(fields)]
    defaults = {name: value for name, value in fields.items() if name in fields_named()}
    return [_entry(index, defaults, entry) for index, entry in enumerate(_entries(str(fields[FIELD])))]


def _entries(raw: str) -> list[dict]:
    most = config.env_int("MAX_OUTPUTS_PER_JOB")
    what = f'must be a JSON array of 1 to {most} objects of option fields, e.g. [{{"format":"opus","bitrate":"64k"}}]'
    if len(raw) > MAX_OUTPUTS_CHARS:
        raise OptionError(FIELD, what)
    try:
        entries = json.loads(raw)
    except ValueError:
        raise OptionError(FIELD, what) from None
    if not isinstance(entries, list) or not 1 <= len(entries) <= most:
        raise OptionError(FIELD, what)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise OptionError(f"{FIELD}[{index}]", "must be an object of option fields")
    return entries


def _entry(index: int, defaults: dict[str, str], entry: dict) -> Options:
    known = fields_named()
    given: dict[str, str] = {}
    for name, value in entry.items():
        if name not in known:
            raise OptionError(f"{FIELD}[{index}].{str(name)[:40]}", "is no option; options are " + ", ".join(known))
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise OptionError(f"{FIELD}[{index}].{name}", "must be a string, number or boolean")
        given[name] = "" if value is None else _as_text(value)
    merged = dict(defaults, **given)
    try:
        try:
            return parse(merged)
        except OptionError as exc:
            # A default bitrate or quality that the entry's own format cannot take (192k for flac, a VBR
            # quality for opus) is left out for that entry rather than refused: the format picks its own.
            if exc.field not in ("bitrate", "quality") or exc.field in given or "format" not in given:
                raise
            return parse({name: value for name, value in merged.items() if name not in ("bitrate", "quality")
                          or name in given})
    except OptionError as exc:
        raise OptionError(f"{FIELD}[{index}].{exc.field}", exc.message) from None


def _as_text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- what a done job holds


def stored_outputs(job: Job) -> list[dict]:
    """The job's outputs as stored (canonical dicts): `outputs`, or the one of `options`."""
    return list(job.outputs) or [job.options or {}]


def results_of(job: Job) -> list[dict]:
    """The job's results (RESULT_FIELDS); a job made before `results` existed has one, from its mp3_id."""
    if job.results:
        return list(job.results)
    if not job.mp3_id:
        return []
    return [{"mp3_id": job.mp3_id, "output": 0, "name": jobs.result_name(job), "media_type": jobs.media_type(job),
             "size": None, "options": job.options or {}, "audio_seconds": job.audio_seconds, "loudness": None,
             "waveform_id": None}]


def file_ids(job: Job) -> list[str]:
    """Every stored file of the job's results: each result and its waveform (mp3_id first)."""
    found: list[str] = [job.mp3_id] if job.mp3_id else []
    for result in results_of(job):
        for key in ("mp3_id", "waveform_id"):
            if result.get(key) and result[key] not in found:
                found.append(result[key])
    return found


def served_file(job: Job, file_id: str) -> tuple[str, str] | None:
    """(download file name, Content-Type) of one of the job's files; None when the job has no such file."""
    for result in results_of(job):
        name = result.get("name") or jobs.result_name(job)
        if result.get("mp3_id") == file_id:
            return name, result.get("media_type") or jobs.media_type(job)
        if result.get("waveform_id") == file_id:
            return jobs.stem(name) + ".waveform.json", WAVEFORM_MEDIA_TYPE
    return None


# ---------------------------------------------------------------- reuse (dedup) per output


def shared_results(wanted: list[dict], candidates: list[Job]) -> list[dict] | None:
    """The results a new job asking for `wanted` (canonical option dicts) can share with done jobs of the
    same video: for each wanted output, every result one earlier output with the very same options made
    (several with split=chapters), renumbered to the new job's output index. None unless every output
    matches (a partial match converts all: one ffmpeg run makes the rest as cheaply as the missing ones)."""
    shared: list[dict] = []
    for index, options in enumerate(wanted):
        made = _results_made_with(options, candidates)
        if made is None:
            return None
        shared += [dict(result, output=index) for result in made]
    return shared


def _results_made_with(options: dict, candidates: list[Job]) -> list[dict] | None:
    for job in candidates:
        results = results_of(job)
        for output in sorted({r.get("output", 0) for r in results}):
            group = [r for r in results if r.get("output", 0) == output]
            if all(r.get("mp3_id") for r in group) and group[0].get("options") == options:
                return group
    return None
