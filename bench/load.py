"""HTTP load generator: simulated annotators doing next-task -> submit over real HTTP.

Run as its own process (``python -m bench.load --spec spec.json``) so that its CPU use can be
measured apart from the server's and the orchestrator's. One thread per annotator, each with its
own keep-alive HTTP/1.1 connection (``http.client``) and its own token. Prints one JSON object on stdout.

The client is the standard library's ``http.client`` rather than httpx: the load generator shares the
two cores with the server it measures. Measured here with 8 annotators: httpx used 0.21 cores at 83
annotations/s (2.5 ms of CPU per annotation), ``http.client`` 0.12 cores at 218/s (0.55 ms). Real
annotators' browsers run on other machines, so the lighter the client, the truer the server's figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Any


def _annotator(
    *,
    base_url: str,
    project_id: int,
    token: str,
    deadline: float,
    start: threading.Event,
    out: dict[str, Any],
    seed: int,
) -> None:
    rng = random.Random(seed)
    lat: dict[str, list[float]] = {"next": [], "submit": []}
    errors: Counter[str] = Counter()
    samples: list[str] = []
    annotations = 0
    replays = 0
    empty = 0
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    next_url = f"/api/v1/projects/{project_id}/next"
    next_body = json.dumps({"count": 1})
    client = _Client(base_url, headers)
    start.wait()
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            status, text = client.post(next_url, next_body)
        except (OSError, http.client.HTTPException) as exc:
            errors[f"next:{type(exc).__name__}"] += 1
            client.reset()
            continue
        lat["next"].append(time.perf_counter() - t0)
        if not 200 <= status < 300:
            errors[f"next:{status}"] += 1
            if len(samples) < 3:
                samples.append(f"next {status}: {text[:300]}")
            continue
        tasks = json.loads(text)["tasks"]
        if not tasks:
            empty += 1
            break  # the pool is exhausted for this annotator
        task_id = tasks[0]["task_id"]
        body = {
            "idempotency_key": str(uuid.uuid4()),
            "ranking": [[1], [0]] if rng.random() < 0.5 else [[0], [1]],
            "strength": rng.randint(1, 3),
        }
        t0 = time.perf_counter()
        try:
            status, text = client.post(f"/api/v1/projects/{project_id}/tasks/{task_id}/judgments", json.dumps(body))
        except (OSError, http.client.HTTPException) as exc:
            errors[f"submit:{type(exc).__name__}"] += 1
            client.reset()
            continue
        lat["submit"].append(time.perf_counter() - t0)
        if status == 201:
            annotations += 1
        elif status == 200:
            replays += 1  # 2xx, so not an error, but a fresh key should never replay
        else:
            errors[f"submit:{status}"] += 1
            if len(samples) < 3:
                samples.append(f"submit {status}: {text[:300]}")
    client.close()
    out.update(
        lat=lat,
        errors=errors,
        samples=samples,
        annotations=annotations,
        replays=replays,
        empty=empty,
        end=time.perf_counter(),
    )


class _Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a transport error."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.headers = headers
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30.0)

    def post(self, path: str, body: str) -> tuple[int, str]:
        self.conn.request("POST", path, body=body.encode(), headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read().decode()

    def reset(self) -> None:
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30.0)

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def run_level(*, base_url: str, project_id: int, tokens: list[str], duration: float, seed: int = 0) -> dict[str, Any]:
    cpu0 = time.process_time()
    start = threading.Event()
    results: list[dict[str, Any]] = [{} for _ in tokens]
    t_start = time.perf_counter() + 0.2
    deadline = t_start + duration
    threads = [
        threading.Thread(
            target=_annotator,
            kwargs=dict(
                base_url=base_url,
                project_id=project_id,
                token=tok,
                deadline=deadline,
                start=start,
                out=results[i],
                seed=seed * 1000 + i,
            ),
            daemon=True,
        )
        for i, tok in enumerate(tokens)
    ]
    for t in threads:
        t.start()
    time.sleep(max(0.0, t_start - time.perf_counter()))
    start.set()
    for t in threads:
        t.join()
    end = max(r["end"] for r in results)
    elapsed = end - t_start
    lat_next = [x for r in results for x in r["lat"]["next"]]
    lat_submit = [x for r in results for x in r["lat"]["submit"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    annotations = sum(r["annotations"] for r in results)

    def summary(values: list[float]) -> dict[str, Any]:
        return {
            "n": len(values),
            "p50_ms": _ms(percentile(values, 50)),
            "p95_ms": _ms(percentile(values, 95)),
            "p99_ms": _ms(percentile(values, 99)),
            "max_ms": _ms(max(values) if values else None),
        }

    return {
        "loadgen_cpu_s": time.process_time() - cpu0,
        "concurrency": len(tokens),
        "duration_s": round(elapsed, 3),
        "annotations": annotations,
        "annotations_per_s": round(annotations / elapsed, 1) if elapsed > 0 else 0.0,
        "requests_per_s": round((len(lat_next) + len(lat_submit)) / elapsed, 1) if elapsed > 0 else 0.0,
        "next": summary(lat_next),
        "submit": summary(lat_submit),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "unexpected_replays": sum(r["replays"] for r in results),
        "error_samples": [s for r in results for s in r["samples"]][:5],
        "annotators_out_of_tasks": sum(r["empty"] for r in results),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="JSON file: base_url, project_id, tokens, duration, seed")
    args = parser.parse_args()
    with open(args.spec) as fh:
        spec = json.load(fh)
    result = run_level(
        base_url=spec["base_url"],
        project_id=spec["project_id"],
        tokens=spec["tokens"],
        duration=spec["duration"],
        seed=spec.get("seed", 0),
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
