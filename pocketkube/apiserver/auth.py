"""Authentication: who is asking.

X.509 client certificates signed by the cluster CA (CN = user, O = groups, as kube's x509
authenticator reads them) and bearer tokens: service-account JWTs signed with the cluster's
service-account key (PyJWT verifies them). Everything else is anonymous, which only reaches the
health and version endpoints. Authorization (RBAC) comes later; until then every authenticated
user may do everything, as with kube's AlwaysAllow mode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

log = logging.getLogger("pocketkube.apiserver.auth")

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = [ISSUER, "https://kubernetes.default.svc", "kubernetes"]
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


def user_from_cert(peercert: dict[str, Any] | None) -> User | None:
    """The user named by a verified client certificate (`ssl.SSLObject.getpeercert()`)."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, [*orgs, "system:authenticated"])


class TokenAuthority:
    """Issues and verifies service-account tokens (RS256 JWTs, kube's claim layout)."""

    def __init__(self, private_key: Path, public_key: Path) -> None:
        # Parsed once: loading (and checking) an RSA key costs far more than a signature.
        self._private = serialization.load_pem_private_key(private_key.read_bytes(), None)
        self._public = serialization.load_pem_public_key(public_key.read_bytes())

    def issue(self, namespace: str, sa_name: str, sa_uid: str, audiences: list[str],
              expiration: int, bound: dict[str, Any] | None = None) -> tuple[str, int]:
        now = int(time.time())
        exp = now + expiration
        claims: dict[str, Any] = {
            "aud": audiences or AUDIENCES,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{sa_name}",
            "kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": sa_name, "uid": sa_uid}},
        }
        if bound:
            claims["kubernetes.io"][bound["kind"].lower()] = {
                "name": bound.get("name", ""), "uid": bound.get("uid", "")}
        return jwt.encode(claims, self._private, algorithm="RS256"), exp

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            return jwt.decode(token, self._public, algorithms=["RS256"], audience=AUDIENCES,
                              issuer=ISSUER, options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as e:
            log.debug("token rejected: %s", e)
            return None


def user_from_claims(claims: dict[str, Any]) -> User:
    k8s = claims.get("kubernetes.io") or {}
    ns = k8s.get("namespace", "")
    sa = k8s.get("serviceaccount") or {}
    return User(claims["sub"],
                ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                 "system:authenticated"],
                uid=sa.get("uid", ""))
