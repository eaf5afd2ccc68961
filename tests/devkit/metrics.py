"""Reading a process's Prometheus /metrics page."""
from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def metric_samples(metrics_url: str) -> dict[tuple[str, tuple], float]:
    """Every series of a /metrics endpoint: (sample name, sorted label pairs) -> value."""
    text = requests.get(f"{metrics_url}/metrics", timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric_value(metrics_url: str, name: str, **labels) -> float | None:
    """One series' value (None when absent)."""
    return metric_samples(metrics_url).get((name, tuple(sorted(labels.items()))))
