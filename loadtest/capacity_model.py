"""Capacity model of the converter under its autoscaler, for operators (no cluster needed).

    .venv/bin/python loadtest/capacity_model.py --out loadtest/capacity/

Reads the converter's KEDA ScaledObject from the BUILT prod overlay (the default autoscaler) and, for
the comparison, the optional prometheus-adapter HPA and the scale-to-zero variant, fits the per-job
conversion time from loadtest/benchmarks.json, replays upload traces through the HPA algorithm and
KEDA's activation (capacity_hpa.py) and the queue (capacity_sim.py), and writes PNG plots,
figures.json and summary.md: the largest steady upload rate prod holds within the 300 s job-latency
SLO (95 % of jobs, monitoring/prometheus/rules/alerts.yml), how long a 10x burst takes to drain,
the alternatives against the default. (The bench's API capacity scenario is
loadtest/api_capacity_locustfile.py.)
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import astuple
from pathlib import Path

import capacity_hpa as hpa
import capacity_sim as sim
from capacity_report import describe, plot_run, plot_search, summary

ROOT = Path(__file__).resolve().parents[1]
SLO_S, SLO_SHARE = 300.0, 0.95  # the job-latency SLO: 95 % of jobs ready within 300 s
HOUR = 3600.0
# the prod default first: the search and the summary's headline figures are its
KINDS = ("keda", "hpa", "keda-zero", "keda-zero-amqp")


def kubectl() -> list[str]:
    for candidate in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl")):
        if candidate and Path(candidate).exists():
            return [str(candidate), "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    sys.exit("kubectl (or kustomize) is needed to build the prod overlay: make .venv/.tools-installed")


# what is built: prod, prod with scale to zero, and the optional adapter HPA's component combination
BUILDS = {"prod": "overlays/prod", "prod-zero": "overlays/prod-zero",
          "adapter": "tests/converter-hpa-prometheus-adapter"}


def build_overlays() -> dict[str, list[dict]]:
    """The prod overlay, prod + components/converter-keda-scale-to-zero and the adapter HPA's
    combination, built in a scratch copy whose *.env are the committed *.env.example (real secrets
    are neither needed nor read)."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        for d in ("k8s", "kustomize", "monitoring", "loadtest"):
            # an operator's real secrets (kustomize/**/*.env) are never copied
            skip = ("*.env", "__pycache__") if d == "kustomize" else ("__pycache__", "out", "capacity")
            shutil.copytree(ROOT / d, Path(tmp) / d, ignore=shutil.ignore_patterns(*skip))
        for example in (Path(tmp) / "kustomize").rglob("*.env.example"):
            shutil.copy(example, example.with_suffix(""))
        zero = Path(tmp) / "kustomize" / "overlays" / "prod-zero"
        zero.mkdir()
        (zero / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources: [../prod]\ncomponents: [../../components/converter-keda-scale-to-zero]\n")
        built = {}
        for name, rel in BUILDS.items():
            p = subprocess.run([*kubectl(), str(Path(tmp) / "kustomize" / rel)],
                               capture_output=True, text=True)
            if p.returncode:
                sys.exit(f"building the {name} overlay failed:\n{p.stderr}")
            built[name] = [d for d in yaml.safe_load_all(p.stdout) if d]
    return built


def find(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def benchmark_points(data: dict) -> list[tuple[float, float]]:
    """(media seconds, converter seconds) of the benchmark: the long video (a) and the short clips
    with one converter (b). The big uncompressed files (c) are left out: their time follows bytes."""
    seconds = lambda name: float(re.search(r"-(\d+)s", name).group(1))  # noqa: E731
    points = [(seconds(data["a"]["file"]), data["a"]["converter_s"])]
    points += [(seconds(b["clip"]), b["converter_per_job_median_s"]) for b in data["b"] if b["converters"] == 1]
    return points


def cpu_points(data: dict) -> list[tuple[float, float]]:
    """(media seconds, CPU seconds of the whole stack) per job of the bench's figure cpu (loadtest/bench_cpu.py):
    the 20 s clip and the 10-minute file. Empty when the benchmark predates the figure."""
    seconds = lambda name: float(re.search(r"-(\d+)s", name).group(1))  # noqa: E731
    return [(seconds(c["file"]), c["stack_cpu_s"]) for c in (data.get("cpu") or {}).values()]


def cpu_cost(data: dict, model: "Model", rate: float) -> dict | None:
    """What a job costs in CPU (the bill), from figure cpu: a line through its points, its mean over the
    modelled media lengths, and the cores the whole stack burns at `rate` jobs/s."""
    points = cpu_points(data)
    if len(points) < 2:
        return None
    line = sim.fit_line(points)
    rng = random.Random(model.seed)
    mean = sum(line(sim.media_length(rng)) for _ in range(100_000)) / 100_000
    return {"fixed_s": line.fixed_s, "per_media_s": line.per_media_s, "mean_s": mean,
            "cores_at_max_steady_rate": mean * rate,
            "ratios": {key: c["ratio"] for key, c in data["cpu"].items()}}


def cpu_summary(cost: dict | None, rate: float) -> str:
    if cost is None:
        return ""
    return ("\n## CPU per job (the bill)\n\n"
            f"- The whole stack's CPU per job (figure cpu of loadtest/benchmarks.json: gateway, auth, converter "
            f"and ffmpeg, notification, storage): {cost['fixed_s']:.3f} s + {cost['per_media_s'] * 1000:.2f} ms per "
            f"second of media, mean {cost['mean_s']:.2f} s over the modelled uploads; against ffmpeg alone "
            + ", ".join(f"{k} {v:.2f}×" for k, v in cost["ratios"].items())
            + f".\n- At the largest steady rate ({rate * 60:.0f} jobs/min) that is "
            f"**{cost['cores_at_max_steady_rate']:.1f} cores** busy across the stack.\n")


def scaler_docs(built: dict[str, list[dict]]) -> dict[str, dict]:
    """The manifest each kind of autoscaler is read from. The adapter HPA gets prod's bounds (an
    overlay using it would patch them as prod patches the ScaledObject's); the amqp variant is the
    scale-to-zero ScaledObject with the trigger's protocol the KEDA component had before (ready
    messages only), kept as the measured reason for http."""
    prod = find(built["prod"], "ScaledObject", "converter")
    adapter = copy.deepcopy(find(built["adapter"], "HorizontalPodAutoscaler", "converter"))
    adapter["spec"]["minReplicas"], adapter["spec"]["maxReplicas"] = (
        prod["spec"]["minReplicaCount"], prod["spec"]["maxReplicaCount"])
    zero = find(built["prod-zero"], "ScaledObject", "converter")
    amqp = copy.deepcopy(zero)
    amqp["spec"]["triggers"][0]["metadata"]["protocol"] = "amqp"
    return {"keda": prod, "hpa": adapter, "keda-zero": zero, "keda-zero-amqp": amqp}


def scaler_of(doc: dict):
    return hpa.spec_from_hpa(doc) if doc["kind"] == "HorizontalPodAutoscaler" else hpa.keda_from_scaledobject(doc)


class Model:
    def __init__(self, docs: dict[str, dict], service: sim.ServiceTime, startup_s: float, seed: int):
        self.docs, self.service, self.startup_s, self.seed = docs, service, startup_s, seed
        # the prod default's HPA arithmetic (bounds, target, behaviour): what the search sizes
        self.spec = hpa.keda_from_scaledobject(docs["keda"]).hpa.spec

    def scaler(self, kind: str):
        made = scaler_of(self.docs[kind])
        return hpa.HPA(made) if isinstance(made, hpa.HPASpec) else made

    def run(self, rate_at, peak: float, hours: float, kind: str = "keda") -> sim.Result:
        rng = random.Random(self.seed)
        end = hours * HOUR
        jobs = sim.make_jobs(sim.poisson_arrivals(rate_at, peak, 0.0, end, rng), self.service, rng)
        scaler = self.scaler(kind)
        # the autoscaler's floor from the start (an HPA's minReplicas, KEDA's minReplicaCount)
        initial = scaler.min_count if isinstance(scaler, hpa.Keda) else scaler.spec.min_replicas
        return sim.simulate(jobs, scaler, initial, self.startup_s, end)

    def mean_work_s(self, n: int = 1_000_000) -> float:
        rng = random.Random(self.seed)
        return sum(self.service(sim.media_length(rng)) for _ in range(n)) / n

    def holds(self, rate: float, hours: float) -> tuple[bool, float]:
        """Does a steady rate keep 95 % of the jobs of the run's last hour within 300 s, with a queue
        that no longer grows? (A rate just above what the pods convert passes a short run on the
        SLO alone: its backlog needs hours to reach 300 s of wait.)"""
        result = self.run(sim.steady(rate), rate, hours)
        share = result.within(SLO_S, since=(hours - 1) * HOUR)
        last, before = (mean_waiting(result, (hours - k - 1) * HOUR, (hours - k) * HOUR) for k in (0, 1))
        # growth beyond two targets' worth per replica (120 jobs in prod, ~5 s of wait) is a trend,
        # not the noise of a stable queue
        growing = last > before + 2 * self.spec.target * self.spec.max_replicas
        return share >= SLO_SHARE and not growing, share

    def max_steady_rate(self, hours: float, steps: int) -> tuple[float, list[tuple[float, float, bool]]]:
        bound = self.spec.max_replicas / self.mean_work_s()  # every pod busy all the time
        lo, hi, tried = 0.0, 1.2 * bound, []
        for _ in range(steps):
            mid = (lo + hi) / 2
            ok, share = self.holds(mid, hours)
            tried.append((mid, share, ok))
            lo, hi = (mid, hi) if ok else (lo, mid)
        return lo, sorted(tried)


def inputs(scaler) -> dict:
    """The settings a run used, as figures.json records them (tests/deploy/test_capacity_inputs.py
    compares them with the manifests: committed figures never describe other settings)."""
    keda = scaler if isinstance(scaler, hpa.Keda) else None
    spec = keda.hpa.spec if keda else scaler.spec
    out = {"min_replicas": keda.min_count if keda else spec.min_replicas, "max_replicas": spec.max_replicas,
           "target": spec.target, "counts_unacked": keda.unacked if keda else True,
           "up": [spec.up.window_s, spec.up.select, [list(astuple(p)) for p in spec.up.policies]],
           "down": [spec.down.window_s, spec.down.select, [list(astuple(p)) for p in spec.down.policies]]}
    if keda:
        out |= {"polling_s": keda.polling_s, "cooldown_s": keda.cooldown_s, "activation": keda.activation}
    return out


def mean_waiting(result: sim.Result, start: float, end: float) -> float:
    waiting = [s.waiting for s in result.samples if start <= s.t < end]
    return sum(waiting) / len(waiting) if waiting else 0.0


def drain_time(result: sim.Result, burst_end: float) -> float:
    """Seconds from the burst's end until every job that arrived before it is done."""
    return max(j.end for j in result.jobs if j.arrival < burst_end) - burst_end


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "loadtest" / "capacity")
    p.add_argument("--benchmarks", type=Path, default=ROOT / "loadtest" / "benchmarks.json")
    p.add_argument("--startup", type=float, default=30.0, help="seconds from scale-up to a pod taking jobs")
    p.add_argument("--slowdown", type=float, default=1.0,
                   help="conversion time factor of prod nodes vs the benchmark machine")
    p.add_argument("--search-hours", type=float, default=3.0, help="length of each steady run of the search")
    p.add_argument("--search-steps", type=int, default=9)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    docs = scaler_docs(build_overlays())
    benchmarks = json.loads(args.benchmarks.read_text())
    line = sim.fit_line(benchmark_points(benchmarks))
    service = sim.ServiceTime(line.fixed_s * args.slowdown, line.per_media_s * args.slowdown)
    model = Model(docs, service, args.startup, args.seed)
    spec = model.spec
    args.out.mkdir(parents=True, exist_ok=True)

    rate, tried = model.max_steady_rate(args.search_hours, args.search_steps)
    plot_search(tried, SLO_SHARE, args.out / "rate-search.png")
    runs = {"steady-90pct": {"keda": model.run(sim.steady(0.9 * rate), 0.9 * rate, args.search_hours)}}
    base, start, length = rate / 4, 1 * HOUR, 0.25 * HOUR
    scenarios = {"burst": (sim.burst(base, 10, start, length), 10 * base, 4.0),
                 "daily": (sim.daily(0.8 * rate), 0.8 * rate, 24.0),
                 "quiet-day": (sim.daily(1 / 60), 1 / 60, 24.0)}
    for name, (rate_at, peak, hours) in scenarios.items():
        runs[name] = {kind: model.run(rate_at, peak, hours, kind) for kind in KINDS}
    for name, by_kind in runs.items():
        plot_run(name, by_kind, SLO_S, args.out / f"{name}.png")
    drains = {kind: drain_time(r, start + length) for kind, r in runs["burst"].items()}
    cost = cpu_cost(benchmarks, model, rate)
    (args.out / "figures.json").write_text(json.dumps(
        {"inputs": {kind: inputs(model.scaler(kind)) for kind in KINDS},
         "max_steady_jobs_per_min": rate * 60, "burst_base_jobs_per_min": base * 60,
         "burst_drain_min": {k: v / 60 for k, v in drains.items()}, "cpu_per_job": cost,
         "runs": {n: {k: describe(r) for k, r in by.items()} for n, by in runs.items()}}, indent=1))
    text = summary(spec, model, service, rate, tried, runs, drains, base, args) + cpu_summary(cost, rate)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
