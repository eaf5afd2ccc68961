"""Plots (matplotlib, PNG) and the markdown summary of the capacity model (capacity_model.py)."""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the report needs no simulator at run time
    import capacity_sim as sim

COLORS = {"keda": "tab:green", "hpa": "tab:blue", "keda-zero": "tab:purple", "keda-zero-amqp": "tab:orange"}
LABELS = {"keda": "KEDA (prod default: http, ready + unacked)", "hpa": "HPA on prometheus-adapter (optional)",
          "keda-zero": "KEDA + scale to zero (http)", "keda-zero-amqp": "KEDA + scale to zero over amqp (ready only)"}
# the adapter HPA runs exactly like the default: dashed on top of it, so both show
STYLES = {"hpa": {"ls": "--", "zorder": 3}}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def p95_by_window(jobs, window_s: float = 300.0) -> tuple[list[float], list[float]]:
    """95th percentile of job latency per window of arrival time (hours, seconds)."""
    bins = defaultdict(list)
    for j in jobs:
        bins[int(j.arrival // window_s)].append(j.latency)
    xs = sorted(bins)
    return [(x + 0.5) * window_s / 3600 for x in xs], [sorted(bins[x])[int(0.95 * (len(bins[x]) - 1))] for x in xs]


def plot_run(name: str, by_kind: dict, slo_s: float, path) -> None:
    plt = _pyplot()
    fig, (q, r, lat) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for kind, res in by_kind.items():
        hours = [s.t / 3600 for s in res.samples]
        style = {"color": COLORS[kind], "label": LABELS[kind], **STYLES.get(kind, {})}
        q.plot(hours, [s.waiting for s in res.samples], lw=0.8, **style)
        r.step(hours, [s.replicas for s in res.samples], where="post", lw=1, **style)
        x, y = p95_by_window(res.jobs)
        lat.plot(x, y, lw=1, marker=".", ms=3, **style)
    q.set_ylabel("jobs waiting\n(video queue, ready)")
    r.set_ylabel("converter replicas")
    lat.axhline(slo_s, color="tab:red", ls="--", lw=1, label=f"SLO {slo_s:.0f} s")
    lat.set_ylabel("job latency p95 (s)\nper 5 min of arrivals")
    lat.set_yscale("log")
    lat.set_xlabel("hours")
    for ax in (q, r, lat):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"converter capacity model: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_search(tried: list[tuple[float, float]], share: float, path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([r * 60 for r, _, _ in tried], [s * 100 for _, s, _ in tried], color="grey", lw=1)
    for r, s, ok in tried:
        ax.plot(r * 60, s * 100, "o", color="tab:green" if ok else "tab:red")
    ax.plot([], [], "o", color="tab:red", label="does not hold (SLO missed, or the queue still grows)")
    ax.axhline(share * 100, color="tab:red", ls="--", lw=1, label=f"SLO: {share:.0%} within 300 s")
    ax.set_xlabel("steady upload rate (jobs/min)")
    ax.set_ylabel("% of jobs within 300 s\n(last hour of the run)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def describe(result: sim.Result) -> dict:
    lat = sorted(j.latency for j in result.jobs)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0  # noqa: E731
    cold = [j.latency for j in result.jobs if _replicas_at(result, j.arrival) == 0]
    return {"jobs": len(lat), "within_slo": result.within(300.0), "p50_s": pick(0.5), "p95_s": pick(0.95),
            "p99_s": pick(0.99), "max_s": lat[-1] if lat else 0.0,
            "max_waiting": max(s.waiting for s in result.samples),
            "max_replicas": max(s.replicas for s in result.samples),
            "replica_hours": result.replica_hours(), "cold_jobs": len(cold),
            "cold_p50_s": sorted(cold)[len(cold) // 2] if cold else 0.0}


def _replicas_at(result: sim.Result, t: float) -> int:
    step = result.step or 15.0
    i = min(len(result.samples) - 1, max(0, int(t // step)))
    return result.samples[i].replicas


def _row(name: str, kind: str, d: dict, extra: str = "") -> str:
    return (f"| {name} | {LABELS[kind]} | {d['jobs']} | {d['within_slo']:.2%} | {d['p50_s']:.1f} | {d['p95_s']:.1f} | "
            f"{d['max_s']:.0f} | {d['max_waiting']} | {d['max_replicas']} | {d['replica_hours']:.0f} | "
            f"{d['cold_jobs']} ({d['cold_p50_s']:.0f} s) |{extra}")


def _behavior(spec) -> str:
    up = ", ".join(f"{p.type} {p.value}/{p.period_s:.0f}s" for p in spec.up.policies)
    down = ", ".join(f"{p.type} {p.value}/{p.period_s:.0f}s" for p in spec.down.policies)
    return (f"scale-up window {spec.up.window_s:.0f} s, {up} ({spec.up.select}); scale-down window "
            f"{spec.down.window_s:.0f} s, {down} ({spec.down.select})")


def summary(spec, model, service, rate, tried, runs, drains, base, args) -> str:
    bound = spec.max_replicas / model.mean_work_s()
    keda, adapter, zero = model.scaler("keda"), model.scaler("hpa"), model.scaler("keda-zero")
    lines = [
        "# Converter capacity model (generated by `loadtest/capacity_model.py`)", "",
        "## Inputs", "",
        f"- Default, KEDA ScaledObject from the built prod overlay: {keda.min_count}-{spec.max_replicas} replicas "
        f"(scale to zero off), target {spec.target:g} messages per replica, rabbitmq trigger over http "
        f"(`messages` = ready + unacked), polling {keda.polling_s:.0f} s; its HPA: tolerance {spec.tolerance}, "
        f"sync 15 s, {_behavior(spec)}.",
        f"- Optional, HPA of components/converter-hpa-prometheus-adapter (`rabbitmq_queue_messages`, ready + "
        f"unacked) with prod's bounds: {adapter.spec.min_replicas}-{adapter.spec.max_replicas} replicas, target "
        f"{adapter.spec.target:g}, same behaviour (tests/deploy keeps them equal).",
        f"- Optional, prod + components/converter-keda-scale-to-zero: {zero.min_count}-{zero.hpa.spec.max_replicas} "
        f"replicas, activation > {zero.activation:g} messages, polling {zero.polling_s:.0f} s, cooldown "
        f"{zero.cooldown_s:.0f} s; and the same over amqp (ready messages only: the trigger the KEDA component "
        "had before), the measured reason for http.",
        f"- Conversion time per job: {service.fixed_s:.3f} s + {service.per_media_s * 1000:.2f} ms per second of media "
        f"(line through loadtest/benchmarks.json, slowdown x{args.slowdown:g}); mean {model.mean_work_s():.2f} s.",
        f"- Media length: log-normal, median 60 s, sigma 1.2, 1 s - 3 h. Pod start-up {args.startup:.0f} s. "
        f"Seed {args.seed}.", "",
        "## Answers", "",
        f"- Largest steady upload rate prod (KEDA) holds within the SLO (95 % of jobs within 300 s, in the last "
        f"hour of a {args.search_hours:g} h run, with a queue no longer growing): **{rate * 60:.0f} jobs/min** "
        f"({rate:.2f}/s); the throughput of "
        f"{spec.max_replicas} busy pods is {bound * 60:.0f} jobs/min (mean of 10^6 draws; a seeded trace's own "
        f"mean differs by about 1 %, the heavy tail of media length).",
        f"- A 10x burst for 15 min on {base * 60:.0f} jobs/min: the backlog is gone **{drains['keda'] / 60:.1f} min** "
        f"after the burst ends with KEDA ({drains['hpa'] / 60:.1f} min with the adapter HPA, "
        f"{drains['keda-zero'] / 60:.1f} min with scale to zero, {drains['keda-zero-amqp'] / 60:.1f} min with "
        "scale to zero over amqp).",
        "", "| trace | autoscaler | jobs | within 300 s | p50 s | p95 s | max s | max waiting | max replicas "
        "| replica-hours | jobs arriving at 0 replicas (p50) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_kind in runs.items():
        for kind, res in by_kind.items():
            lines.append(_row(name, kind, describe(res)))
    lines += ["", "Search (jobs/min: share within 300 s): "
              + ", ".join(f"{r * 60:.0f}: {s:.1%}{'' if ok else ' (fails)'}" for r, s, ok in tried), ""]
    return "\n".join(lines) + "\n"
