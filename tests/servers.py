"""`albert serve` started as a real uvicorn process on a free loopback port, and plain-urllib requests to it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from conftest import free_port


class Server:
    def __init__(self, model_dir, *flags: str, prelude: str = ""):
        """``prelude``: Python run in the server's process before `albert serve` starts (to break things in it)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        entry = (
            ["-c", f"{prelude}\nimport sys\nfrom albert.cli import main\nsys.exit(main())"]
            if prelude
            else ["-m", "albert"]
        )
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "serve", "--model", str(model_dir), "--port", str(self.port), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")), daemon=True).start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 60):
        req = urllib.request.Request(self.url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, payload):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
