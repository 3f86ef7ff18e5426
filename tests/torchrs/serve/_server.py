"""A real ``python -m torchrs.serve`` process on 127.0.0.1, on free ports, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[3]
# Loading torch, the model and warming up takes seconds; on a busy 2-core CI runner, more.
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Running:
    name: str
    rest: str  # http://127.0.0.1:PORT
    grpc: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serve(
    model_dir: Path, name: str, log: Path, *flags: str, wait_available: bool = True
) -> Iterator[Running]:
    """Starts the server, waits until the model is AVAILABLE, and SIGTERMs it on exit."""
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "torchrs.serve",
        str(model_dir),
        "--name",
        name,
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        *flags,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    running = Running(name, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while wait_available:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                status = httpx.get(f"{running.rest}/v1/models/{name}", timeout=2).json()
                if any(s["state"] == "AVAILABLE" for s in status["model_version_status"]):
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server not AVAILABLE after {START_TIMEOUT_S}s:\n{log.read_text()}"
                )
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
