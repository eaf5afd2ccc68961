"""Headless Locust run with CSV and HTML reports in one folder.

    python loadtest/run.py [--users 10] [--spawn-rate 2] [--duration 2m] [--host http://127.0.0.1:8080]
                           [--out loadtest/out/<timestamp>] [--locustfile loadtest/locustfile.py]
                           [-- extra locust arguments, e.g. user class names: ConvertingUser]

Writes <out>/locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv,
report.html and locust.log; prints a one-line summary per request type; exits with Locust's
exit code (1 when any request failed).
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def locust_command(users: int, spawn_rate: float, duration: str, host: str, out: Path,
                   locustfile: Path = HERE / "locustfile.py", extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
            "-u", str(users), "-r", str(spawn_rate), "-t", duration, "--host", host,
            "--csv", str(out / "locust"), "--csv-full-history", "--html", str(out / "report.html"),
            "--logfile", str(out / "locust.log"), "--stop-timeout", "10", *(extra or [])]


def read_stats(out: Path) -> list[dict]:
    """Rows of <out>/locust_stats.csv (one per request type and name, plus 'Aggregated')."""
    with open(out / "locust_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


def run(users: int, spawn_rate: float, duration: str, host: str, out: Path, locustfile: Path = HERE / "locustfile.py",
        extra: list[str] | None = None, env: dict | None = None, timeout: float | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    command = locust_command(users, spawn_rate, duration, host, out, locustfile, extra)
    done = subprocess.run(command, env=env, timeout=timeout, stdout=open(out / "stdout.txt", "wb"),
                          stderr=subprocess.STDOUT)
    return done.returncode


def summary(rows: list[dict]) -> str:
    lines = [f"{'type':6} {'name':22} {'reqs':>6} {'fails':>6} {'rps':>7} {'p50':>7} {'p95':>7} {'p99':>7}"]
    for row in rows:
        lines.append(f"{row['Type']:6} {row['Name'][:22]:22} {row['Request Count']:>6} {row['Failure Count']:>6} "
                     f"{float(row['Requests/s']):7.2f} {row['50%']:>7} {row['95%']:>7} {row['99%']:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", "-u", type=int, default=10)
    parser.add_argument("--spawn-rate", "-r", type=float, default=2)
    parser.add_argument("--duration", "-t", default="2m", help="locust run time, e.g. 30s, 5m")
    parser.add_argument("--host", default="http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default loadtest/out/<timestamp>)")
    parser.add_argument("--locustfile", type=Path, default=HERE / "locustfile.py")
    parser.add_argument("extra", nargs="*", help="passed to locust after '--'")
    args = parser.parse_args(argv)
    out = args.out or HERE / "out" / time.strftime("%Y%m%d-%H%M%S")
    code = run(args.users, args.spawn_rate, args.duration, args.host, out, args.locustfile, args.extra)
    try:
        print(summary(read_stats(out)))
    except OSError:
        print((out / "stdout.txt").read_text(errors="replace")[-3000:], file=sys.stderr)
    print(f"\nreports: {out}/report.html, {out}/locust_stats.csv (locust exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
