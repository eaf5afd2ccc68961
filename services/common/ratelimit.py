"""The IETF RateLimit-Policy and RateLimit header fields, so that clients can read their limits before
they hit them: draft-ietf-httpapi-ratelimit-headers-10 (September 2025), its structured-field form:

    RateLimit-Policy: "register";q=10;w=3600
    RateLimit: "register";r=7;t=1800

A policy is a quota `q` per window `w` seconds (or of concurrent things: qu="concurrent-requests");
`r` is what is left of it and `t` the seconds until it is whole again. A route reports its policies
with `report` while it runs; web.create_base_app's after_request writes them on the answer,
successes and refusals alike (a 429 carries them next to its Retry-After).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Response, g, has_request_context

POLICY_HEADER, STATE_HEADER = "RateLimit-Policy", "RateLimit"


@dataclass(frozen=True)
class Standing:
    """One policy and the caller's standing in it."""

    policy: str  # the policy's name, a structured-field string: [a-z_] only
    quota: int  # q
    remaining: int  # r
    window: int | None = None  # w: seconds; None for a limit on concurrent things
    reset: int | None = None  # t: seconds until the quota is whole again, when known
    unit: str | None = None  # qu: "requests" (the default) or "concurrent-requests"


def policy_field(standings: list[Standing]) -> str:
    return ", ".join(f'"{s.policy}";q={s.quota}' + (f';qu="{s.unit}"' if s.unit else "")
                     + (f";w={s.window}" if s.window is not None else "") for s in standings)


def state_field(standings: list[Standing]) -> str:
    return ", ".join(f'"{s.policy}";r={max(s.remaining, 0)}' + (f";t={max(s.reset, 0)}" if s.reset is not None else "")
                     for s in standings)


def report(*standings: Standing) -> None:
    """The request's standing in these policies (a later report of a policy replaces the earlier one)."""
    if not has_request_context():
        return
    reported = g.setdefault("ratelimit", {})
    for standing in standings:
        reported[standing.policy] = standing


def add_headers(response: Response) -> None:
    """Write what the request reported; an answer relayed with its own fields (auth's) keeps them."""
    standings = list(g.get("ratelimit", {}).values())
    if standings and STATE_HEADER not in response.headers:
        response.headers[POLICY_HEADER] = policy_field(standings)
        response.headers[STATE_HEADER] = state_field(standings)
