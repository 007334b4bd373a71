"""The framework floor: how fast the same gunicorn + Django (+ DRF) stack answers requests that do ~nothing.

``GET /api/v1/projects/`` without a token is refused by DRF (401) before any query; ``GET /healthz`` is a plain
Django view running ``SELECT 1``. Their cost per request bounds what any annotator endpoint on this stack and
machine can reach. Run as its own process; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import httpx

from bench.load import percentile


def run(*, base_url: str, path: str, concurrency: int, duration: float) -> dict[str, Any]:
    cpu0 = time.process_time()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    statuses: list[dict[int, int]] = [{} for _ in range(concurrency)]
    start = threading.Event()
    deadline = time.perf_counter() + 0.2 + duration

    def worker(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            start.wait()
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = client.get(path)
                latencies[i].append(time.perf_counter() - t0)
                statuses[i][r.status_code] = statuses[i].get(r.status_code, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    t_start = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    flat = [x for xs in latencies for x in xs]
    merged: dict[int, int] = {}
    for s in statuses:
        for code, n in s.items():
            merged[code] = merged.get(code, 0) + n
    return {
        "path": path,
        "concurrency": concurrency,
        "requests": len(flat),
        "requests_per_s": round(len(flat) / elapsed, 1),
        "p50_ms": round((percentile(flat, 50) or 0) * 1000, 2),
        "p99_ms": round((percentile(flat, 99) or 0) * 1000, 2),
        "statuses": merged,
        "loadgen_cpu_s": time.process_time() - cpu0,
        "duration_s": round(elapsed, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=8.0)
    args = p.parse_args()
    json.dump(run(base_url=args.base_url, path=args.path, concurrency=args.concurrency, duration=args.duration),
              sys.stdout)  # fmt: skip


if __name__ == "__main__":
    main()
