"""Upload traces and the converter queue they meet: an event simulation of the `video` queue (one
FIFO, one job per converter pod at a time, as prefetch 1 gives) under an autoscaler
(capacity_hpa.HPA or Keda). Pure Python and seeded, so a run is repeatable."""
from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

# Media length of an upload: log-normal, median 60 s, sigma 1.2 (mean ~2 min, 1 in 100 over ~16 min:
# most uploads are short clips, a few are long videos), clipped to 1 s .. 3 h.
MEDIA_MEDIAN_S, MEDIA_SIGMA, MEDIA_MIN_S, MEDIA_MAX_S = 60.0, 1.2, 1.0, 3 * 3600.0


@dataclass(frozen=True)
class ServiceTime:
    """Seconds a converter pod spends on a job: fixed cost + seconds per second of media."""
    fixed_s: float
    per_media_s: float

    def __call__(self, media_s: float) -> float:
        return self.fixed_s + self.per_media_s * media_s


def fit_line(points: list[tuple[float, float]]) -> ServiceTime:
    """Least-squares line through (media seconds, conversion seconds)."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return ServiceTime(my - slope * mx, slope)


def media_length(rng: random.Random) -> float:
    return min(max(rng.lognormvariate(math.log(MEDIA_MEDIAN_S), MEDIA_SIGMA), MEDIA_MIN_S), MEDIA_MAX_S)


def poisson_arrivals(rate_at, peak_rate: float, start: float, end: float, rng: random.Random) -> list[float]:
    """Arrival times of a Poisson process with rate `rate_at(t)` (jobs/s) <= peak_rate, by thinning."""
    times, t = [], start
    while peak_rate > 0:
        t += rng.expovariate(peak_rate)
        if t >= end:
            break
        if rng.random() * peak_rate < rate_at(t):
            times.append(t)
    return times


def steady(rate: float):
    return lambda t: rate


def burst(base: float, factor: float, start: float, length: float):
    return lambda t: base * factor if start <= t < start + length else base


def daily(peak: float, peak_hour: float = 16.0):
    """A day's curve: zero at peak_hour - 12 h, `peak` at peak_hour, smooth (cosine squared)."""
    return lambda t: peak * ((1 - math.cos(2 * math.pi * ((t / 3600 - peak_hour + 12) % 24) / 24)) / 2) ** 2


@dataclass
class Job:
    arrival: float
    media_s: float
    work_s: float
    start: float | None = None
    end: float | None = None

    @property
    def latency(self) -> float:
        return self.end - self.arrival


@dataclass
class Pod:
    ready_at: float
    job: Job | None = None
    leaving: bool = False


@dataclass
class Sample:
    t: float
    waiting: int
    converting: int
    replicas: int
    ready: int


@dataclass
class Result:
    jobs: list[Job]
    samples: list[Sample] = field(default_factory=list)

    def within(self, slo_s: float, since: float = float("-inf")) -> float:
        done = [j for j in self.jobs if j.arrival >= since]
        return sum(j.latency <= slo_s for j in done) / len(done) if done else 1.0

    def replica_hours(self) -> float:
        return sum(s.replicas for s in self.samples) * self.step / 3600 if self.samples else 0.0

    @property
    def step(self) -> float:
        return self.samples[1].t - self.samples[0].t if len(self.samples) > 1 else 0.0


def make_jobs(arrivals: list[float], service: ServiceTime, rng: random.Random) -> list[Job]:
    jobs = []
    for t in arrivals:
        media = media_length(rng)
        jobs.append(Job(t, media, service(media)))
    return jobs


class Simulation:
    """The queue, the pods and the autoscaler's clock. Events: arrivals, job ends, pods becoming
    ready, autoscaler ticks (every sync period, and KEDA's polling interval when it is KEDA)."""

    def __init__(self, jobs: list[Job], scaler, initial: int, startup_s: float, sync_s: float = 15.0):
        self.jobs, self.scaler, self.startup_s, self.sync_s = jobs, scaler, startup_s, sync_s
        self.waiting: deque[Job] = deque()
        self.pods: list[Pod] = [Pod(0.0) for _ in range(initial)]
        self.events: list = []
        self.seq = 0
        self.samples: list[Sample] = []
        self.keda = hasattr(scaler, "poll")

    def push(self, t: float, kind: str, item=None):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, item))

    @property
    def replicas(self) -> int:
        return sum(not p.leaving for p in self.pods)

    def run(self, end: float) -> Result:
        for job in self.jobs:
            self.push(job.arrival, "arrive", job)
        self.end = end
        self.push(0.0, "tick")
        if self.keda:
            self.push(0.0, "poll")
        while self.events:
            now, _, kind, item = heapq.heappop(self.events)
            getattr(self, "on_" + kind)(now, item)
        return Result(self.jobs, self.samples)

    def on_arrive(self, now, job):
        self.waiting.append(job)
        self.dispatch(now)

    def on_done(self, now, pod):
        pod.job.end = now
        pod.job = None
        if pod.leaving:  # a pod told to stop finishes its job first (terminationGracePeriodSeconds)
            self.pods.remove(pod)
        self.dispatch(now)

    def on_ready(self, now, pod):
        self.dispatch(now)

    def dispatch(self, now):
        for pod in self.pods:
            if not self.waiting:
                return
            if pod.job is None and not pod.leaving and pod.ready_at <= now:
                job = pod.job = self.waiting.popleft()
                job.start = now
                self.push(now + job.work_s, "done", pod)

    def converting(self) -> int:
        return sum(p.job is not None for p in self.pods)

    def busy(self, now: float) -> bool:
        """The clocks run to the trace's end, and on while work is left (so no job is stranded)."""
        return now < self.end or bool(self.waiting) or self.converting() > 0

    def on_tick(self, now, _):
        if self.busy(now):
            self.push(now + self.sync_s, "tick")
        self.scale(now, self.scaler.sync(now, self.replicas, self.metric()))
        self.samples.append(Sample(now, len(self.waiting), self.converting(), self.replicas,
                                   sum(p.ready_at <= now and not p.leaving for p in self.pods)))

    def on_poll(self, now, _):
        if self.busy(now):
            self.push(now + self.scaler.polling_s, "poll")
        self.scale(now, self.scaler.poll(now, self.replicas, self.metric()))

    def metric(self) -> int:
        """The HPA's metric: ready + unacknowledged messages (what rabbitmq_queue_messages counts);
        KEDA's amqp QueueLength trigger sees only the ready ones."""
        unacked = not self.keda or self.scaler.unacked
        return len(self.waiting) + (self.converting() if unacked else 0)

    def scale(self, now: float, target: int):
        current = self.replicas
        for _ in range(target - current):
            pod = Pod(now + self.startup_s)
            self.pods.append(pod)
            self.push(pod.ready_at, "ready", pod)
        if target < current:
            self.remove(now, current - target)

    def remove(self, now: float, count: int):
        """Like a ReplicaSet: pods not ready yet go first, then idle ones, then busy ones (which
        finish their job before they stop)."""
        staying = [p for p in self.pods if not p.leaving]
        order = sorted(staying, key=lambda p: (p.ready_at <= now, p.job is not None))
        for pod in order[:count]:
            if pod.job is None:
                self.pods.remove(pod)
            else:
                pod.leaving = True


def simulate(jobs: list[Job], scaler, initial: int, startup_s: float, end: float) -> Result:
    return Simulation(jobs, scaler, initial, startup_s).run(end)
