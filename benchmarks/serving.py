"""Serving benchmark: ``torchrs.serve`` vs TF's own SavedModel signature, on the loopback interface.

``python benchmarks/serving.py [--clients 8] [--seconds 10] [--out benchmarks/results/serving.json]``
(``make bench-serve``) builds two TF exports of the tutorials' sizes (the basic-retrieval index:
a BruteForce over 1,682 movies behind a 943-user StringLookup tower, 32 dimensions; the basic
ranking model in functional form: two towers of 32 and a 256-64-1 ReLU stack), converts both,
and for each model runs, one after the other, two servers of the same shape on 127.0.0.1:

- ``torchrs``: ``python -m torchrs.serve CONVERTED_DIR`` (REST, batching on);
- ``tf``: ``benchmarks/_tf_serving_baseline.py`` (TF's ``serving_default`` behind the same uvicorn +
  Starlette + codec + batcher). TF Serving's own binary is not installable here.

The load generator is bounded: N clients, each sending one single-example request after another
(closed loop, keep-alive connections, httpx) for T seconds in all, then it stops; the T seconds are
split into rounds that alternate between the two servers (both up at once), so that background load
drifting during the run weighs on both alike. It reports requests/s and
p50 / p99 latency. The clients share the machine with the server (and, on a shared machine, with
other work): figures compare the two servers measured in the same run, not absolute capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
# The MovieLens 100K tutorials' sizes (users, movies) and their embedding width.
N_USERS, N_MOVIES, EMBEDDING_DIM = 943, 1682, 32
START_TIMEOUT_S = 240.0
FRAMEWORKS = ("torchrs", "tf")
# Load before the measured rounds: connections open, both servers past their first requests.
WARMUP_SECONDS = 2.0


@dataclass(frozen=True)
class LoadResult:
    """One server under load: what the bounded load generator measured."""

    model: str
    framework: str
    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_exports(root: Path) -> dict[str, tuple[Path, Path]]:
    """TF exports of both models and their conversions: ``{model: (tf_dir, torchrs_dir)}``."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    from converters.tfrs_to_torch.cli import main as convert

    tf.keras.utils.set_random_seed(0)
    users = np.array([str(i) for i in range(1, N_USERS + 1)], dtype=object)
    movies = np.array([f"Movie {i} (1995)" for i in range(N_MOVIES)], dtype=object)
    layers = tf.keras.layers
    user_model = tf.keras.Sequential(
        [layers.StringLookup(vocabulary=users), layers.Embedding(N_USERS + 1, EMBEDDING_DIM)]
    )
    movie_model = tf.keras.Sequential(
        [layers.StringLookup(vocabulary=movies), layers.Embedding(N_MOVIES + 1, EMBEDDING_DIM)]
    )
    index = tfrs.layers.factorized_top_k.BruteForce(user_model)
    candidates = tf.data.Dataset.from_tensor_slices(movies.astype(str)).batch(100)
    index.index_from_dataset(candidates.map(lambda t: (t, movie_model(t))))
    index(tf.constant(["42"]))
    tf.saved_model.save(index, str(root / "index_tf"))

    user_id = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    movie_title = tf.keras.Input(shape=(), dtype=tf.string, name="movie_title")
    x = layers.Concatenate()(
        [
            layers.Embedding(N_USERS + 1, EMBEDDING_DIM)(
                layers.StringLookup(vocabulary=users)(user_id)
            ),
            layers.Embedding(N_MOVIES + 1, EMBEDDING_DIM)(
                layers.StringLookup(vocabulary=movies)(movie_title)
            ),
        ]
    )
    x = layers.Dense(64, activation="relu")(layers.Dense(256, activation="relu")(x))
    ranking = tf.keras.Model([user_id, movie_title], layers.Dense(1, name="rating")(x))
    ranking.save(str(root / "ranking_tf"), save_format="tf")
    out = {}
    for name in ("index", "ranking"):
        if (
            convert([str(root / f"{name}_tf"), "--out", str(root / f"{name}_torchrs"), "--json"])
            != 0
        ):
            raise RuntimeError(f"converting the {name} export failed")
        out[name] = (root / f"{name}_tf", root / f"{name}_torchrs")
    return out


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)


def _wait_ready(process: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    """Until the server answers a predict request (it is then loaded and warmed up)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    probe = _requests(name, np.random.default_rng(0), 1)[0]
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            url = f"http://127.0.0.1:{port}/v1/models/{name}:predict"
            if httpx.post(url, content=probe, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not answer in {START_TIMEOUT_S}s:\n{log.read_text()}")
        time.sleep(0.3)


def _requests(model: str, rng: np.random.Generator, count: int) -> list[bytes]:
    """Single-example request bodies, users / movies drawn at random (a few unknown ones)."""
    users = [str(i) for i in rng.integers(1, N_USERS + 20, count)]
    if model == "index":
        return [json.dumps({"instances": [u]}).encode() for u in users]
    movies = [f"Movie {i} (1995)" for i in rng.integers(0, N_MOVIES, count)]
    return [
        json.dumps({"instances": [{"user_id": u, "movie_title": m}]}).encode()
        for u, m in zip(users, movies, strict=True)
    ]


async def _load(
    url: str, bodies: list[bytes], clients: int, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = worker
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            response = await http.post(url, content=bodies[i % len(bodies)], headers=headers)
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200
            i += clients

    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(w, http) for w in range(clients)))
    return latencies, errors


def summarize(
    model: str, framework: str, clients: int, rounds: list[tuple[list[float], int, float]]
) -> LoadResult:
    """One server's rounds merged: total requests over total time, percentiles over every request."""
    latencies = [x for lat, _, _ in rounds for x in lat]
    elapsed = sum(seconds for _, _, seconds in rounds)
    ms = np.array(latencies) * 1000
    return LoadResult(
        model,
        framework,
        clients,
        round(elapsed, 2),
        len(latencies),
        sum(errors for _, errors, _ in rounds),
        round(len(latencies) / elapsed, 1),
        round(float(np.percentile(ms, 50)), 2),
        round(float(np.percentile(ms, 99)), 2),
    )


def load_round(
    model: str, port: int, clients: int, seconds: float
) -> tuple[list[float], int, float]:
    """N clients for T seconds against one server; stops by itself. Returns (latencies, errors, seconds)."""
    bodies = _requests(model, np.random.default_rng(port), 4096)
    url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"
    started = time.perf_counter()
    latencies, errors = asyncio.run(_load(url, bodies, clients, seconds))
    return latencies, errors, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, default=8, help="concurrent clients (default %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="load per server (default %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds per server (default %(default)s)"
    )
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "serving.json"
    )
    args = parser.parse_args(argv)
    results: list[LoadResult] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="torchrs-serve-bench-") as tmp:
        root = Path(tmp)
        exports = build_exports(root)
        batching = [
            "--max-batch-size",
            str(args.max_batch_size),
            "--batch-timeout-ms",
            str(args.batch_timeout_ms),
        ]
        # Every server starts at once (their loading overlaps); each model is then measured while
        # the other model's servers sit idle.
        servers: dict[tuple[str, str], tuple[subprocess.Popen[bytes], int, Path]] = {}
        try:
            for model, (tf_dir, torchrs_dir) in exports.items():
                for framework in FRAMEWORKS:
                    port = _free_port()
                    source = torchrs_dir if framework == "torchrs" else tf_dir
                    entry = (
                        ["-m", "torchrs.serve"]
                        if framework == "torchrs"
                        else [str(REPO / "benchmarks" / "_tf_serving_baseline.py")]
                    )
                    command = [sys.executable, *entry, str(source), "--name", model]
                    command += ["--port", str(port), *batching]
                    if framework == "torchrs":
                        command += ["--grpc-port", "0"]
                    log = root / f"{model}_{framework}.log"
                    servers[(model, framework)] = (_spawn(command, log), port, log)
            for (model, _), (process, port, log) in servers.items():
                _wait_ready(process, port, model, log)
            for model in exports:
                ports = {f: servers[(model, f)][1] for f in FRAMEWORKS}
                for port in ports.values():  # warm-up, not recorded
                    load_round(model, port, args.clients, WARMUP_SECONDS)
                rounds: dict[str, list[tuple[list[float], int, float]]] = {f: [] for f in ports}
                for _ in range(args.rounds):  # alternating: drifting background load hits both
                    for framework, port in ports.items():
                        rounds[framework].append(
                            load_round(model, port, args.clients, args.seconds / args.rounds)
                        )
                for framework, measured in rounds.items():
                    result = summarize(model, framework, args.clients, measured)
                    results.append(result)
                    print(json.dumps(asdict(result)), flush=True)
        finally:
            for process, _, _ in servers.values():
                process.send_signal(signal.SIGTERM)
            for process, _, _ in servers.values():
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/serving.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    table = render_markdown(payload)
    args.out.with_suffix(".md").write_text(table)
    print("\n" + table)
    return 0


def render_markdown(payload: dict[str, object]) -> str:
    """The figures as the README cites them: a table with the run's machine, load and command."""
    machine = payload["machine"]
    assert isinstance(machine, dict)
    lines = [
        "# Serving benchmark (torchrs.serve vs TF's SavedModel behind the same Python server)",
        "",
        f"{payload['date']}; `{payload['command']}`; {machine['cpus']} CPUs ({machine['processor']}), "
        f"load average at the end {machine['load_average_at_end']}; run took "
        f"{payload['wall_seconds']} s. Written by benchmarks/serving.py (make bench-serve).",
        "",
        "| model | server | clients | requests/s | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    results = payload["results"]
    assert isinstance(results, list)
    for r in results:
        lines.append(
            f"| {r['model']} | {r['framework']} | {r['clients']} | {r['requests_per_s']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
