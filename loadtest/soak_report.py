"""The soak's report: <out>/report.md with three plots (job latency, errors, queue depth over time,
the faults marked on each) and the verdicts."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

FAULT_COLOURS = {"kill": "tab:red", "restart": "tab:purple"}


def _mark_faults(ax, faults: list[dict], t0: float) -> None:
    for fault in faults:
        colour = FAULT_COLOURS[fault["action"].split()[0]]
        ax.axvline(fault["at"] - t0, color=colour, alpha=0.5, linewidth=1)
        ax.text(fault["at"] - t0, 1.0, " " + fault["action"].split()[1], rotation=90, fontsize=7, color=colour,
                va="top", transform=ax.get_xaxis_transform())


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_latency(out: Path, latencies: list[tuple[float, float]], faults: list[dict], t0: float, slo: float) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    if latencies:
        xs, ys = zip(*sorted(latencies), strict=True)
        ax.scatter([x - t0 for x in xs], ys, s=8, label="job (upload accepted -> done/failed)")
    ax.axhline(slo, color="tab:orange", linestyle="--", label=f"SLO {slo:.0f} s")
    ax.set(xlabel="seconds since the soak started (upload time)", ylabel="job latency (s)", yscale="log",
           title="Normal users' job latency")
    _mark_faults(ax, faults, t0)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out / "latency.png")


def locust_history(path: Path) -> list[dict]:
    """The Aggregated rows of locust_stats_history.csv (one per few seconds)."""
    try:
        with open(path, newline="") as f:
            return [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]
    except OSError:
        return []


def _rates(history: list[dict], column: str, t0: float, bin_seconds: float) -> tuple[list, list]:
    """Per-second rate in bins of `bin_seconds` from a cumulative column of Locust's history."""
    xs, ys, last = [], [], None
    for row in history:
        at, total = float(row["Timestamp"]), float(row[column])
        if last is None or at - last[0] >= bin_seconds:
            if last is not None:
                xs.append(at - t0)
                ys.append((total - last[1]) / (at - last[0]))
            last = (at, total)
    return xs, ys


def plot_errors(out: Path, history: list[dict], hostile: list[tuple[float, str, int]], faults: list[dict],
                t0: float, bin_seconds: float = 10) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    for column, label, alpha in (("Total Request Count", "normal users: requests/s", 0.4),
                                 ("Total Failure Count", "normal users: failed requests/s (Locust)", 1.0)):
        ax.plot(*_rates(history, column, t0, bin_seconds), alpha=alpha, label=label)
    for source in sorted({s for _, s, _ in hostile}):
        bins: dict[int, int] = {}
        for at, name, status in hostile:
            if name == source and (status == 0 or status >= 500):
                bins[int((at - t0) // bin_seconds)] = bins.get(int((at - t0) // bin_seconds), 0) + 1
        if bins:
            keys = range(0, max(bins) + 1)  # bins without errors are zeros, not gaps
            ax.plot([k * bin_seconds for k in keys], [bins.get(k, 0) / bin_seconds for k in keys], linestyle=":",
                    label=f"{source}: 5xx or no answer /s")
    ax.set(xlabel="seconds since the soak started", ylabel=f"per second ({bin_seconds:.0f} s bins)", title="Errors")
    ax.set_ylim(bottom=0)
    _mark_faults(ax, faults, t0)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out / "errors.png")


def plot_queues(out: Path, samples: list[dict], faults: list[dict], t0: float) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    for key, label in (("video", "queue video (ready)"), ("mp3", "queue mp3 (ready)"),
                       ("active", "jobs queued or converting (MongoDB)")):
        ax.plot([s["at"] - t0 for s in samples], [s.get(key) for s in samples], label=label)
    ax.set(xlabel="seconds since the soak started", ylabel="messages / jobs", title="Queue depth")
    _mark_faults(ax, faults, t0)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out / "queues.png")


def locust_failures(path: Path) -> list[dict]:
    """Rows of locust_failures.csv: Method, Name, Error, Occurrences."""
    try:
        with open(path, newline="") as f:
            return sorted(csv.DictReader(f), key=lambda row: -int(row["Occurrences"]))
    except OSError:
        return []


def _fmt(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def write(out: Path, run: dict, judged: dict) -> Path:
    """report.md in `out`; `run`: settings, t0, faults, samples, hostile timeline, hostile figures."""
    t0, faults = run["t0"], run["faults"]
    plots = [plot_latency(out, judged["latencies"], faults, t0, judged["figures"]["slo_seconds"]),
             plot_errors(out, locust_history(out / "locust" / "locust_stats_history.csv"), run["hostile_events"],
                         faults, t0),
             plot_queues(out, run["samples"], faults, t0)]
    lines = [f"# Soak {run['started']}", "",
             f"`{run['command']}`: {run['minutes']} min of load, {run['users']} Locust users, seed {run['seed']}. "
             "The machine (2 cores) was shared with other engineers' test runs during the soak, so timings are "
             "noisier than on a dedicated machine.", "", "## Verdicts", "", "| invariant | verdict |", "|---|---|"]
    lines += [f"| {name} | {'PASS' if ok else '**FAIL**'} |" for name, ok in judged["verdicts"].items()]
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in judged["figures"].items()]
    failing = {k: v for k, v in judged["problems"].items() if v}
    if failing:
        lines += ["", "## Jobs behind failed invariants", ""]
        lines += [f"- {k}: {', '.join(v[:20])}{' …' if len(v) > 20 else ''}" for k, v in failing.items()]
    lines += ["", "## Faults", "", "| t (s) | fault | pid | outcome | restarted after (s) |", "|---|---|---|---|---|"]
    lines += [f"| {f['at'] - t0:.0f} | {f['action']} | {f.get('pid', '')} | {f.get('outcome', '')} | "
              f"{f.get('back', '')} |" for f in faults]
    lines += ["", "## Normal users' failed requests (Locust)", "", "| request | error | count |", "|---|---|---|"]
    lines += [f"| {r['Method']} {r['Name']} | {r['Error'][:160].strip()} | {r['Occurrences']} |"
              for r in locust_failures(out / "locust" / "locust_failures.csv")]
    lines += ["", "## Hostile clients", "", "| client | answers (status: count; 0 = no answer) |", "|---|---|"]
    lines += [f"| {name} | {counts} |" for name, counts in run["hostile"].items()]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "Locust's own reports: `locust/` (`report.html` and the per-second history are not committed, nor "
              "are `accepted.jsonl`, the 202s of the normal users, and `logs/`, the stack's logs)."]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
