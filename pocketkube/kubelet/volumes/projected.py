"""projected volumes (kube's `pkg/volume/projected`): configMap, secret, downwardAPI and
serviceAccountToken sources merged into one directory with the volume's defaultMode. This is
also what every pod's `kube-api-access-<suffix>` volume is (token + kube-root-ca.crt's ca.crt +
the namespace from the downward API). Errors of all sources are reported together, as kube's
aggregate (`[a, b]` for more than one).
"""

from __future__ import annotations

from typing import Any

from pocketkube.kubelet.volumes import configmap, downwardapi, secret
from pocketkube.kubelet.volumes.common import FileProjection, Payload, SetupError
from pocketkube.kubelet.volumes.tokens import TokenManager

DEFAULT_MODE = 0o644


async def payload(src: dict[str, Any], pod: dict[str, Any], source: Any, tokens: TokenManager,
                  allocatable: dict[str, str] | None) -> Payload:
    ns = (pod.get("metadata") or {}).get("namespace", "")
    mode = src.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else int(mode)
    out: Payload = {}
    problems: list[str] = []
    for s in src.get("sources") or []:
        try:
            if s.get("configMap") is not None:
                out.update(await configmap.payload(s["configMap"], ns, source, mode))
            elif s.get("secret") is not None:
                out.update(await secret.payload(s["secret"], ns, source, mode, name_key="name"))
            elif s.get("downwardAPI") is not None:
                out.update(downwardapi.payload(s["downwardAPI"], pod, allocatable, mode))
            elif s.get("serviceAccountToken") is not None:
                tp = s["serviceAccountToken"]
                token = await tokens.get(pod, tp.get("audience") or "",
                                         int(tp.get("expirationSeconds") or 3600))
                out[tp.get("path", "token")] = FileProjection(token.encode(), mode)
            elif s.get("clusterTrustBundle") is not None:
                raise SetupError("clusterTrustBundle projections are not supported")
        except SetupError as e:
            problems.append(str(e))
    if problems:
        raise SetupError(problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]")
    return out
