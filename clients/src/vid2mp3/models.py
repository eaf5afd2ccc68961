"""Typed results of the API: a job's view, a page of jobs, an account, a finished upload, a preset."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

FINAL = ("done", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class Job:
    """A job as GET /jobs/<id> shows it (`raw` keeps every field, newer ones included)."""

    id: str
    status: str
    filename: Optional[str] = None
    size: Optional[int] = None
    progress: Optional[float] = None
    eta_seconds: Optional[float] = None
    reason: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    mp3_id: Optional[str] = None
    download_url: Optional[str] = None
    link: Optional[str] = None
    reused: bool = False
    created_at: Optional[str] = None
    expires_at: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_view(cls, view: Dict[str, Any]) -> "Job":
        return cls(id=view["job_id"], status=view["status"], filename=view.get("filename"), size=view.get("size"),
                   progress=view.get("progress"), eta_seconds=view.get("eta_seconds"), reason=view.get("reason"),
                   options=view.get("options") or {}, mp3_id=view.get("mp3_id"),
                   download_url=view.get("download_url"), link=view.get("link"), reused=bool(view.get("reused")),
                   created_at=view.get("created_at"), expires_at=view.get("expires_at"), raw=dict(view))

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """Every result file of a done job (`outputs` of its view: mp3_id, filename, format, size, link, ...);
        a server older than several outputs shows one, made from mp3_id."""
        shown = self.raw.get("outputs")
        if shown:
            return list(shown)
        if not self.mp3_id:
            return []
        return [{"mp3_id": self.mp3_id, "output": 0, "format": (self.options or {}).get("format") or "mp3",
                 "filename": None, "download_url": self.download_url, "link": self.link}]

    @property
    def final(self) -> bool:
        """Whether the job can still change (a final job never does)."""
        return self.status in FINAL

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class Preset:
    """A named set of output options (GET /me/presets): built in, or one of yours."""

    name: str
    builtin: bool
    fields: Dict[str, str]
    description: Optional[str] = None

    @classmethod
    def from_view(cls, view: Dict[str, Any]) -> "Preset":
        return cls(name=view["name"], builtin=bool(view.get("builtin")), fields=dict(view.get("fields") or {}),
                   description=view.get("description"))


@dataclass(frozen=True)
class Upload:
    """A finished upload: the job it made, and the offset it resumed from (0: sent whole in this run)."""

    job_id: str
    url: str
    size: int
    resumed_from: int = 0


@dataclass(frozen=True)
class Account:
    """GET /me: who the credential belongs to, what they use and may use."""

    email: Optional[str]
    admin: bool
    usage: Dict[str, Any]
    limits: Optional[Dict[str, Any]]
    webhook_secret: Optional[str] = None
