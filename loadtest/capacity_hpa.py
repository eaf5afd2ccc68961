"""The HorizontalPodAutoscaler's replica arithmetic (autoscaling/v2, as the Kubernetes documentation
and the controller describe it) and KEDA's activation around it, as pure functions of time and
metric: the capacity model (capacity_model.py) drives them with a simulated queue.

What is modelled, per sync period (15 s):
  raw desired = ceil(current * metric / target), unless |metric / target - 1| <= tolerance (0.1);
  stabilisation: the lowest recommendation of the scale-up window, the highest of the scale-down
  window (the docs' "uses the highest value from the specified interval");
  policies: Pods / Percent per periodSeconds, counted from the replica count at the period's start,
  combined by selectPolicy (Max, Min, Disabled); then min/max replicas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period default
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance default


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    window_s: float
    select: str  # "Max", "Min" or "Disabled"
    policies: tuple[Policy, ...]


# The documented defaults of `behavior` (used for every field the manifest leaves out).
DEFAULT_UP = Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
DEFAULT_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class HPASpec:
    min_replicas: int
    max_replicas: int
    target: float  # AverageValue per replica of the (External) metric
    up: Rules = DEFAULT_UP
    down: Rules = DEFAULT_DOWN
    tolerance: float = TOLERANCE


def rules_from(part: dict | None, default: Rules) -> Rules:
    part = part or {}
    policies = tuple(Policy(p["type"], int(p["value"]), float(p["periodSeconds"]))
                     for p in part.get("policies", [])) or default.policies
    return Rules(float(part.get("stabilizationWindowSeconds", default.window_s)),
                 part.get("selectPolicy", default.select), policies)


def spec_from_behavior(min_replicas: int, max_replicas: int, target: float, behavior: dict | None,
                       tolerance: float = TOLERANCE) -> HPASpec:
    behavior = behavior or {}
    return HPASpec(min_replicas, max_replicas, target, rules_from(behavior.get("scaleUp"), DEFAULT_UP),
                   rules_from(behavior.get("scaleDown"), DEFAULT_DOWN), tolerance)


def spec_from_hpa(doc: dict) -> HPASpec:
    """HPASpec of an autoscaling/v2 HPA scaling on one AverageValue (External or Pods) metric."""
    spec = doc["spec"]
    (metric,) = spec["metrics"]
    source = metric[{"External": "external", "Pods": "pods"}[metric["type"]]]
    assert source["target"]["type"] == "AverageValue", "the model needs an AverageValue target"
    return spec_from_behavior(int(spec.get("minReplicas", 1)), int(spec["maxReplicas"]),
                              quantity(source["target"]["averageValue"]), spec.get("behavior"))


def quantity(value) -> float:
    """A Kubernetes quantity as a number ("200m" -> 0.2, "3" -> 3.0, "1k" -> 1000.0)."""
    text = str(value)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1:] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


def raw_desired(current: int, metric: float, target: float, tolerance: float = TOLERANCE) -> int:
    """The documented formula: desired = ceil(current * metric / target), skipped within tolerance.
    `metric` is the per-replica value (for an AverageValue target: the total divided by current)."""
    ratio = metric / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    # rounded first so that float noise (2.0000000001) does not add a replica
    return math.ceil(round(current * ratio, 9))


@dataclass
class HPA:
    """One HPA's memory: its recent recommendations and scale events (what the controller keeps)."""
    spec: HPASpec
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def sync(self, now: float, current: int, metric_total: float) -> int:
        """New replica count at `now` for `current` replicas and the metric's total value."""
        s = self.spec
        if current == 0:  # the controller does not scale a target scaled to zero (KEDA does)
            return 0
        if current > s.max_replicas or current < s.min_replicas:
            return self._record(now, current, min(max(current, s.min_replicas), s.max_replicas))
        desired = raw_desired(current, metric_total / current, s.target, s.tolerance)
        return self.normalize(now, current, desired)

    def normalize(self, now: float, current: int, desired: int) -> int:
        """Stabilise `desired`, then limit it by the policies and min/max (normalizeDesiredReplicasWithBehaviors)."""
        if not self.recommendations:
            self.recommendations.append((now, current))
        stabilized = self._stabilize(now, current, desired)
        return self._record(now, current, self._rate_limit(now, current, stabilized))

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        up_cut, down_cut = now - self.spec.up.window_s, now - self.spec.down.window_s
        up_rec = min([desired] + [r for t, r in self.recommendations if t > up_cut])
        down_rec = max([desired] + [r for t, r in self.recommendations if t > down_cut])
        keep = min(up_cut, down_cut)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > keep] + [(now, desired)]
        return min(max(current, up_rec), down_rec)

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        s = self.spec
        if desired > current:
            limit = max(current, scale_up_limit(now, current, self.up_events, self.down_events, s.up))
            return min(desired, s.max_replicas, limit)
        if desired < current:
            limit = min(current, scale_down_limit(now, current, self.up_events, self.down_events, s.down))
            return max(desired, s.min_replicas, limit)
        return desired

    def _record(self, now: float, current: int, new: int) -> int:
        if new > current:
            self.up_events.append((now, new - current))
        elif new < current:
            self.down_events.append((now, current - new))
        longest = max([p.period_s for p in self.spec.up.policies + self.spec.down.policies] + [0])
        self.up_events = [e for e in self.up_events if e[0] > now - longest]
        self.down_events = [e for e in self.down_events if e[0] > now - longest]
        return new


def _changed_within(now: float, period_s: float, events: list[tuple[float, int]]) -> int:
    return sum(n for t, n in events if t > now - period_s)


def _period_start(now, current, policy, up_events, down_events) -> int:
    """Replicas at the start of the policy's period: the policy limits the change over the period."""
    return (current - _changed_within(now, policy.period_s, up_events)
            + _changed_within(now, policy.period_s, down_events))


def scale_up_limit(now: float, current: int, up_events, down_events, rules: Rules) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(now, current, p, up_events, down_events)
        proposals.append(start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100)))
    # the most change (Max, the default) or the least (Min)
    return min(proposals) if rules.select == "Min" else max(proposals)


def scale_down_limit(now: float, current: int, up_events, down_events, rules: Rules) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(now, current, p, up_events, down_events)
        proposals.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
    return max(proposals) if rules.select == "Min" else min(proposals)


@dataclass
class Keda:
    """A ScaledObject: KEDA itself moves 0 <-> 1 (activation, cooldownPeriod); above one replica the
    HPA it creates (minReplicas 1, the ScaledObject's behaviour) does the work."""
    hpa: HPA
    min_count: int = 0
    activation: float = 0.0
    cooldown_s: float = 300.0
    polling_s: float = 30.0
    unacked: bool = False  # does the trigger count unacknowledged messages (http protocol)?
    last_active: float = float("-inf")

    def poll(self, now: float, current: int, metric_total: float) -> int:
        if metric_total > self.activation:
            self.last_active = now
            return max(current, 1)
        if current > 0 and self.min_count == 0 and now - self.last_active >= self.cooldown_s:
            return 0
        return current

    def sync(self, now: float, current: int, metric_total: float) -> int:
        return self.hpa.sync(now, current, metric_total)


def keda_from_scaledobject(doc: dict, max_override: int | None = None) -> Keda:
    spec = doc["spec"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    min_count = int(spec.get("minReplicaCount", 0))
    hpa = HPA(spec_from_behavior(max(min_count, 1), max_override or int(spec.get("maxReplicaCount", 100)),
                                 quantity(meta["value"]), behavior))
    # over amqp KEDA reads the queue's message count, ready messages only; over http (the
    # management API) ready + unacked unless excludeUnacknowledged
    unacked = meta.get("protocol") == "http" and str(meta.get("excludeUnacknowledged", "false")).lower() != "true"
    return Keda(hpa, min_count, quantity(meta.get("activationValue", 0)), float(spec.get("cooldownPeriod", 300)),
                float(spec.get("pollingInterval", 30)), unacked)
