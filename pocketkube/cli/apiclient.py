"""A minimal synchronous HTTPS client for the lifecycle commands (readiness, status, version).

The CLI is not an event loop component and makes a handful of requests, so the standard
library's http.client with the cluster CA and the admin client certificate is all it needs.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from pocketkube import __version__
from pocketkube.pki import PkiPaths


class ApiClient:
    def __init__(self, base_url: str, paths: PkiPaths, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(paths.ca_cert))
        self.context.load_cert_chain(str(paths.admin_cert), str(paths.admin_key))

    def get(self, path: str, timeout: float | None = None) -> tuple[int, bytes]:
        """GET `path`; returns (status, body). Raises OSError when the server cannot be reached."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout or self.timeout
        )
        try:
            conn.request(
                "GET",
                path,
                headers={
                    "Accept": "application/json, */*",
                    "User-Agent": f"pocketkube/{__version__}",
                },
            )
            response = conn.getresponse()
            return response.status, response.read()
        except http.client.HTTPException as exc:
            raise OSError(f"bad response from {self.host}:{self.port}: {exc}") from exc
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None


def parse_checks(text: str) -> list[tuple[str, bool, str]]:
    """Parse `/readyz?verbose` ("[+]etcd ok", "[-]etcd failed: reason …") into
    (check, ok, detail) triples."""
    checks = []
    for line in text.splitlines():
        if line.startswith(("[+]", "[-]")):
            name, _, detail = line[3:].partition(" ")
            checks.append((name, line[1] == "+", detail))
    return checks
