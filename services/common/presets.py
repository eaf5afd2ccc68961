"""Named sets of output options: the built-in presets and each user's own (stored by storage/presets.py).

A preset is a mapping of option fields, with the names and values of the upload's form fields
(options.py). An upload, a URL import or one entry of `outputs` may name one (`preset=NAME`): `resolve`
makes its fields the defaults and lets the explicit fields override them, before `options.parse`.
"""
from __future__ import annotations

import re
from typing import Mapping

from . import config, options
from .errors import Conflict, InvalidInput, NotFound
from .options import OptionError
from .storage import presets as stored_presets

FIELD = "preset"  # the form field (and tus metadata key, and `outputs` entry key) that names a preset
NAME = re.compile(r"[a-z0-9_-]{1,40}", re.ASCII)
CUSTOM = "custom"  # the metrics' label of every user preset (their names are unbounded)

# Built-in presets: option fields as an upload sends them. Tags: the title is the upload's file name
# unless `title` is given; artist and album are the upload's own fields (a preset cannot know them).
BUILTIN: dict[str, dict[str, str]] = {
    # Speech for podcast apps: mono, EBU R128 streaming loudness (-16 LUFS, services/converter/command.py).
    "podcast": {"format": "mp3", "bitrate": "64k", "channels": "1", "normalize": "true"},
    # Music: MP3's highest constant bitrate (plays everywhere, no VBR seeking quirks), a cover from the video.
    "music": {"format": "mp3", "bitrate": "320k", "cover": "true"},
    # Voice notes and calls: Opus is clear at 32k mono where MP3 is not.
    "voice": {"format": "opus", "bitrate": "32k", "channels": "1"},
    # Lectures and books: AAC in M4A is better than MP3 at 64k mono and keeps chapters as players expect.
    "audiobook": {"format": "m4a", "bitrate": "64k", "channels": "1", "normalize": "true"},
}
DESCRIPTIONS = {
    "podcast": "MP3 64k mono, loudness-normalised to -16 LUFS",
    "music": "MP3 320k stereo with cover art",
    "voice": "Opus 32k mono",
    "audiobook": "M4A (AAC) 64k mono, loudness-normalised, chapters kept",
}

# Preset fields an explicit field makes meaningless: they go, so that overriding one option never
# turns the preset's other ones into an error (bitrate and quality exclude each other).
_REPLACED_BY = {"bitrate": ("quality",), "quality": ("bitrate",)}
_CODEC_FIELDS = ("bitrate", "quality", "sample_rate")  # what another format may not allow


# ---------------------------------------------------------------- resolution


def resolve(fields: Mapping[str, str], owner: str) -> tuple[dict[str, str], str | None]:
    """The fields to parse (the preset's, overridden by the explicit ones; `preset` itself removed) and
    the preset's name (None without one). InvalidInput `unknown_preset` for a name that is neither
    built in nor one of `owner`'s."""
    name = (fields.get(FIELD) or "").strip().lower()
    explicit = {key: value for key, value in fields.items() if key != FIELD}
    if not name:
        return explicit, None
    merged = _without_overridden(fields_of(name, owner), explicit)
    merged.update({key: value for key, value in explicit.items() if _given(value)})
    return merged, name


def fields_of(name: str, owner: str) -> dict[str, str]:
    """The option fields of preset `name` (built in, or `owner`'s own)."""
    if name in BUILTIN:
        return dict(BUILTIN[name])
    record = stored_presets.find(owner, name) if NAME.fullmatch(name) else None
    if record is None:
        raise InvalidInput("unknown_preset", f"no preset named {name[:40]!r}: use a built-in one "
                                             f"({', '.join(BUILTIN)}) or one of yours (GET /me/presets)")
    return dict(record["fields"])


def _given(value) -> bool:
    return value is not None and str(value).strip() != ""


def _without_overridden(preset: dict[str, str], explicit: Mapping[str, str]) -> dict[str, str]:
    given = {key for key, value in explicit.items() if _given(value)}
    dropped = {other for key in given for other in _REPLACED_BY.get(key, ())}
    new_format = (explicit.get("format") or "").strip().lower() if "format" in given else None
    if new_format and new_format != preset.get("format", options.DEFAULT_FORMAT):
        dropped.update(_CODEC_FIELDS)
        spec = options.FORMATS.get(new_format)
        if spec is not None and not spec.cover:
            dropped.add("cover")
    if "trim_silence" in given and str(explicit["trim_silence"]).strip().lower() in options.FALSE:
        dropped.add("silence_db")
    return {key: value for key, value in preset.items() if key not in dropped}


def _text(value) -> str:
    """A JSON value as the form field would carry it."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def metric_label(name: str | None) -> str:
    """The preset's name for metrics: built-in names as they are, every user preset as `custom`."""
    if name is None:
        return "none"
    return name if name in BUILTIN else CUSTOM


# ---------------------------------------------------------------- a user's own presets


def checked_name(name: str) -> str:
    """A name a user may give a preset: 1-40 of a-z 0-9 _ -, and not a built-in's."""
    if not NAME.fullmatch(name):
        raise InvalidInput("invalid_preset_name", "a preset name is 1 to 40 characters of a-z, 0-9, _ and -")
    if name in BUILTIN:
        raise Conflict("builtin_preset", f"{name!r} is a built-in preset: choose another name")
    return name


def checked_fields(body: Mapping) -> dict[str, str]:
    """A preset's option fields from a JSON object (values as text, numbers or booleans), checked like an
    upload's and stored in the canonical form. InvalidInput `invalid_option` names a bad one."""
    known = set(options.fields_named())
    text: dict[str, str] = {}
    for key, value in body.items():
        if key not in known:
            raise InvalidInput("invalid_option", f"invalid option {str(key)[:40]}: not an option field "
                                                 f"(they are {', '.join(sorted(known))})")
        if value is None:
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInput("invalid_option", f"invalid option {key}: give text, a number or true/false")
        text[key] = _text(value)
    try:
        parsed = options.parse(text)
    except OptionError as exc:
        raise InvalidInput("invalid_option", f"invalid option {exc.field}: {exc.message}") from None
    return {key: _text(value) for key, value in parsed.to_dict().items()}


def shown(name: str, fields: Mapping[str, str], builtin: bool) -> dict:
    return {"name": name, "builtin": builtin, "description": DESCRIPTIONS.get(name) if builtin else None,
            "fields": dict(fields)}


def all_of(owner: str) -> list[dict]:
    """The built-in presets, then the owner's own by name."""
    return [shown(name, fields, True) for name, fields in BUILTIN.items()] + [
        shown(record["name"], record["fields"], False) for record in stored_presets.of_owner(owner)]


def one_of(owner: str, name: str) -> dict:
    """Preset `name` as `all_of` shows it; NotFound when it is neither built in nor the owner's."""
    if name in BUILTIN:
        return shown(name, BUILTIN[name], True)
    record = stored_presets.find(owner, name) if NAME.fullmatch(name) else None
    if record is None:
        raise NotFound("not_found", "no such preset")
    return shown(name, record["fields"], False)


def put(owner: str, name: str, body: Mapping) -> tuple[dict, bool]:
    """Store (or replace) the owner's preset; the preset as shown and whether it is new. Conflict
    `too_many_presets` once the owner holds PRESETS_MAX_PER_USER and this one is new."""
    name, fields = checked_name(name), checked_fields(body)
    limit = config.env_int("PRESETS_MAX_PER_USER")
    if stored_presets.find(owner, name) is None and stored_presets.count(owner) >= limit:
        raise Conflict("too_many_presets", f"you have as many presets as you may ({limit}, "
                                           "PRESETS_MAX_PER_USER); delete one first")
    created = stored_presets.save(owner, name, fields)
    return shown(name, fields, False), created


def delete(owner: str, name: str) -> None:
    """Forget the owner's preset; built-in ones cannot go (Conflict), unknown ones are NotFound."""
    if name in BUILTIN:
        raise Conflict("builtin_preset", f"{name!r} is a built-in preset and cannot be deleted")
    if not NAME.fullmatch(name) or not stored_presets.remove(owner, name):
        raise NotFound("not_found", "no such preset")
