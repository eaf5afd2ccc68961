"""Small PromQL helpers for the lint tests: metric names used by an expression, promtool parsing."""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

FUNCTIONS_AND_KEYWORDS = {
    # aggregation operators and keywords
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])\s*(\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (a careful approximation of a PromQL parser)."""
    s = _STRING.sub('""', expr)
    s = _MATCHERS.sub("{}", s)
    s = _RANGES.sub("", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for name, call in _IDENT.findall(s):
        if call or name.lower() in FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d.*", name):
            continue
        names.add(name)
    return names


def promtool_parse(promtool: str, exprs: list[tuple[str, str]]) -> list[str]:
    """Parse every expression with promtool (each becomes a recording rule of a temporary file).
    Returns one message per expression that does not parse."""
    rules = [{"record": f"lint:expr_{i}", "expr": expr} for i, (_src, expr) in enumerate(exprs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lint.rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "lint", "rules": rules}]}, sort_keys=False))
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        return []
    output = proc.stdout + proc.stderr
    errors = []
    # promtool reports "... group "lint", rule N, "lint:expr_K": ..." for each bad rule
    for m in re.finditer(r'"lint:expr_(\d+)"[^\n]*', output):
        src, expr = exprs[int(m.group(1))]
        errors.append(f"{src}: {expr!r}: {m.group(0)}")
    return errors or [output]
