"""The capacity model's HPA arithmetic against the Kubernetes documentation's examples
(HorizontalPodAutoscaler walkthrough: "Algorithm details" and "Configurable scaling behavior"),
KEDA's 0 <-> 1 steps, and the queue simulation's invariants (pure logic)."""
from __future__ import annotations

import json
import random

import pytest

# loadtest/ is on pytest's pythonpath (pyproject.toml): the model's modules import each other by name
import capacity_hpa as hpa
import capacity_sim as sim
from capacity_model import benchmark_points, drain_time
from devkit.stack import ROOT

P = hpa.Policy


def spec(lo=1, hi=100, target=1.0, up=hpa.DEFAULT_UP, down=hpa.DEFAULT_DOWN) -> hpa.HPASpec:
    return hpa.HPASpec(lo, hi, target, up, down)


# ---------------------------------------------------------------- desired = ceil(current * metric / target)
@pytest.mark.parametrize("current,metric,expected", [
    (1, "200m", 2), (4, "200m", 8),   # "200m ... target 100m: the number of replicas will be doubled"
    (4, "50m", 2), (3, "50m", 2),     # "50m: you'll halve the number of replicas" (rounded up)
])
def test_desired_is_ceil_of_ratio(current, metric, expected):
    assert hpa.raw_desired(current, hpa.quantity(metric), hpa.quantity("100m")) == expected


@pytest.mark.parametrize("metric", ["91m", "100m", "105m", "110m"])
def test_within_tolerance_nothing_changes(metric):
    assert hpa.raw_desired(4, hpa.quantity(metric), hpa.quantity("100m")) == 4


def test_just_outside_tolerance_scales():
    assert hpa.raw_desired(10, 0.111, 0.1) == 12  # ratio 1.11: ceil(11.1)
    assert hpa.raw_desired(10, 0.089, 0.1) == 9   # ratio 0.89: ceil(8.9)


def test_external_average_value_uses_the_total():
    h = hpa.HPA(spec(target=3))
    assert h.sync(0, 5, metric_total=30) == 10  # ceil(30 / 3), within x2 per 15 s
    assert h.sync(15, 10, metric_total=31) == 10  # 31/30: within tolerance


@pytest.mark.parametrize("text,value", [("3", 3.0), ("200m", 0.2), ("1k", 1000.0), (5, 5.0), ("2.5", 2.5)])
def test_quantities(text, value):
    assert hpa.quantity(text) == pytest.approx(value)


# ---------------------------------------------------------------- stabilisation
def test_scale_down_window_picks_the_highest_recommendation():
    down = hpa.Rules(300, "Max", (P("Percent", 100, 15),))
    h = hpa.HPA(spec(down=down))
    assert h.sync(0, 5, 5) == 5
    assert h.sync(15, 5, 2) == 5   # recommendations 5 (t=0), 2: the highest, 5, wins
    assert h.sync(30, 5, 1) == 5
    assert h.sync(300, 5, 1) == 2  # t=0 left the window; 2 (t=15) is the highest left
    assert h.sync(315, 2, 1) == 1


def test_scale_up_window_picks_the_lowest_recommendation():
    up = hpa.Rules(60, "Max", (P("Percent", 100, 15), P("Pods", 4, 15)))
    h = hpa.HPA(spec(up=up))
    assert h.sync(0, 2, 2) == 2
    assert h.sync(15, 2, 8) == 2   # 2 (t=0) is still in the window
    assert h.sync(60, 2, 8) == 6   # only 8 (t=15) and 8 now: up to 8, limited by +4 pods per 15 s
    assert h.sync(75, 6, 8) == 8


# ---------------------------------------------------------------- policies and selectPolicy
def test_default_scale_up_4_pods_or_100_percent_every_15_s():
    h = hpa.HPA(spec())
    counts = [1]
    for i in range(4):
        counts.append(h.sync(15 * i, counts[-1], 40))
    assert counts == [1, 5, 10, 20, 40]  # max(+4, x2) per 15 s


@pytest.mark.parametrize("select,current,expected", [
    ("Max", 2, 6), ("Max", 10, 20),   # Pods 4/60s vs Percent 100/60s: the larger change
    ("Min", 2, 4), ("Min", 10, 14),   # the smaller change
    ("Disabled", 10, 10),
])
def test_scale_up_select_policy(select, current, expected):
    up = hpa.Rules(0, select, (P("Pods", 4, 60), P("Percent", 100, 60)))
    assert hpa.HPA(spec(up=up)).sync(0, current, 100) == expected


def test_docs_scale_down_example_80_to_10():
    """The docs: Pods 4/60s and Percent 10/60s, highest change selected; 80 replicas scaled to 10
    lose 8, then from 72 again 8 (10 % is 7.2, rounded up), and 4 at a time below 40."""
    down = hpa.Rules(0, "Max", (P("Pods", 4, 60), P("Percent", 10, 60)))
    h = hpa.HPA(spec(down=down))
    assert h.sync(0, 80, 10) == 72
    assert h.sync(15, 72, 10) == 72  # the period's 8 are spent
    assert h.sync(60, 72, 10) == 64
    counts, t = [64], 60
    while counts[-1] > 10:
        t += 60
        counts.append(h.sync(t, counts[-1], 10))
    # 10 % (floored remainder) while above 40 replicas, 4 pods at a time at 40 and below, then the target
    assert counts == [64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]


def test_scale_down_select_min_and_disabled():
    down = hpa.Rules(0, "Min", (P("Pods", 5, 60), P("Percent", 10, 60)))
    assert hpa.HPA(spec(down=down)).sync(0, 80, 10) == 75  # docs: selectPolicy Min, the smaller change
    off = hpa.Rules(0, "Disabled", (P("Percent", 100, 15),))
    assert hpa.HPA(spec(down=off)).sync(0, 80, 10) == 80


def test_min_and_max_replicas_bound_the_result():
    h = hpa.HPA(spec(lo=2, hi=10))
    assert h.sync(0, 2, 1000) == 6 and h.sync(15, 6, 1000) == 10  # +4, then x2 capped at max
    h = hpa.HPA(spec(lo=2, hi=5, down=hpa.Rules(0, "Max", (P("Percent", 100, 15),))))
    assert h.sync(0, 5, 0) == 2
    assert hpa.HPA(spec(lo=2, hi=5)).sync(0, 9, 0) == 5  # above max: back to max first


def test_spec_from_the_prod_shaped_manifest():
    doc = {"spec": {"minReplicas": 2, "maxReplicas": 20, "metrics": [{"type": "External", "external": {
        "metric": {"name": "rabbitmq_queue_messages"}, "target": {"type": "AverageValue", "averageValue": "3"}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600,
                                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}}}}
    s = hpa.spec_from_hpa(doc)
    assert (s.min_replicas, s.max_replicas, s.target) == (2, 20, 3.0)
    assert s.down == hpa.Rules(600, "Max", (P("Pods", 1, 120),))
    assert s.up == hpa.DEFAULT_UP  # omitted: the documented default


# ---------------------------------------------------------------- KEDA
def keda(cooldown=300.0, hi=100):
    return hpa.Keda(hpa.HPA(spec(target=3, hi=hi)), cooldown_s=cooldown, polling_s=15)


def test_keda_activates_from_zero_and_waits_for_the_cooldown():
    k = keda()
    assert k.poll(0, 0, 0) == 0
    assert k.sync(0, 0, 100) == 0      # the HPA does not touch a target at zero
    assert k.poll(15, 0, 1) == 1       # activation: 1 ready message > 0
    assert k.poll(30, 1, 0) == 1
    assert k.poll(300, 1, 0) == 1      # 285 s since last active
    assert k.poll(315, 1, 0) == 0      # cooldownPeriod over


def test_keda_from_scaledobject():
    doc = {"spec": {"minReplicaCount": 0, "maxReplicaCount": 10, "pollingInterval": 15, "cooldownPeriod": 600,
                    "triggers": [{"type": "rabbitmq", "metadata": {"value": "3", "activationValue": "0"}}]}}
    k = hpa.keda_from_scaledobject(doc, max_override=20)
    assert (k.cooldown_s, k.polling_s, k.activation, k.hpa.spec.min_replicas, k.hpa.spec.max_replicas) == \
        (600, 15, 0, 1, 20)
    assert not k.unacked  # no protocol given: amqp, which counts ready messages only
    meta = doc["spec"]["triggers"][0]["metadata"]
    meta["protocol"] = "http"
    assert hpa.keda_from_scaledobject(doc).unacked
    meta["excludeUnacknowledged"] = "true"
    assert not hpa.keda_from_scaledobject(doc).unacked


def test_keda_over_amqp_does_not_see_jobs_in_conversion():
    """One long job converting, nothing ready: the amqp trigger is inactive and scales to zero after
    the cooldown (the pod finishes its job first); counting unacked keeps the pod."""
    for unacked, expected in ((False, 0), (True, 1)):
        k = keda(cooldown=60)
        k.unacked = unacked
        res = sim.simulate([sim.Job(1, 1, 600)], k, 0, 0, 700)
        assert res.jobs[0].end == pytest.approx(615)  # activated at the 15 s poll, then converted
        assert res.samples[20].replicas == expected  # t = 300 s


def test_keda_with_a_floor_never_goes_to_zero():
    """minReplicaCount >= 1 (the default): KEDA's own step to zero never comes, whatever the trigger."""
    doc = {"spec": {"minReplicaCount": 2, "maxReplicaCount": 10, "pollingInterval": 15, "cooldownPeriod": 60,
                    "triggers": [{"type": "rabbitmq", "metadata": {"protocol": "http", "value": "3"}}]}}
    k = hpa.keda_from_scaledobject(doc)
    assert (k.min_count, k.hpa.spec.min_replicas, k.unacked) == (2, 2, True)
    res = sim.simulate([sim.Job(1, 1, 5)], k, k.min_count, 0, 900)
    assert min(s.replicas for s in res.samples) == 2


# ---------------------------------------------------------------- the queue
def run(trace, hours, scaler, initial=1, startup=30.0, seed=3, peak=3.0):
    rng = random.Random(seed)
    end = hours * 3600
    jobs = sim.make_jobs(sim.poisson_arrivals(trace, peak, 0, end, rng), sim.ServiceTime(0.2, 0.01), rng)
    return sim.simulate(jobs, scaler, initial, startup, end)


@pytest.mark.parametrize("kind", ["hpa", "keda"])
def test_no_job_is_lost_through_bursts_and_scale_down(kind):
    scaler = hpa.HPA(spec(lo=1, hi=6, target=3)) if kind == "hpa" else keda(cooldown=120, hi=6)
    res = run(sim.burst(0.05, 60, 1800, 600), 2.0, scaler, initial=1 if kind == "hpa" else 0)
    assert len(res.jobs) > 500
    assert all(j.end is not None and j.end >= j.start >= j.arrival for j in res.jobs)
    assert all(j.latency >= j.work_s - 1e-9 for j in res.jobs)
    assert max(s.replicas for s in res.samples) == 6 and res.samples[-1].replicas < 6
    if kind == "keda":
        assert min(s.replicas for s in res.samples[200:]) == 0  # scaled to zero between jobs


def test_one_pod_serves_first_in_first_out():
    res = run(sim.steady(0.5), 0.5, hpa.HPA(spec(lo=1, hi=1)), startup=0)
    starts = [j.start for j in res.jobs]
    assert starts == sorted(starts)
    for before, after in zip(res.jobs, res.jobs[1:], strict=False):
        assert after.start == pytest.approx(max(after.arrival, before.end))  # waits only for the one ahead


def test_fit_and_benchmark_points():
    line = sim.fit_line([(20, 0.3), (600, 3.2)])
    assert line.per_media_s == pytest.approx(0.005) and line.fixed_s == pytest.approx(0.2)
    points = benchmark_points(json.loads((ROOT / "loadtest" / "benchmarks.json").read_text()))
    assert (600.0, pytest.approx(points[0][1])) == points[0] and len(points) >= 2


def test_burst_drain_time_counts_jobs_arrived_before_the_end():
    res = sim.Result([sim.Job(0, 1, 1, 0, 50), sim.Job(99, 1, 1, 99, 130), sim.Job(101, 1, 1, 101, 500)])
    assert drain_time(res, 100) == 30


def test_daily_curve_and_arrivals():
    day = sim.daily(2.0)
    assert day(16 * 3600) == pytest.approx(2.0) and day(4 * 3600) == pytest.approx(0.0)
    times = sim.poisson_arrivals(sim.steady(1.0), 1.0, 0, 10_000, random.Random(0))
    assert 9_000 < len(times) < 11_000 and times == sorted(times)
