"""Content negotiation: decoding request bodies (JSON, YAML, protobuf) and choosing the response
form from `Accept` (JSON, YAML, server-side Table, PartialObjectMetadata), as kube-apiserver's
`negotiation` package does. Errors are the Status codes kube answers (400, 406, 413, 415).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from pocketkube.api import errors

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's default request body limit


@dataclass(frozen=True)
class Output:
    form: str  # "json" | "yaml" | "table" | "partial"
    as_list: bool = False  # PartialObjectMetadataList was asked for


JSON = Output("json")


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


def negotiate_output(accept: str | None) -> Output:
    """The first form in the client's Accept list that this server produces."""
    if not accept:
        return JSON
    ranges = _media_ranges(accept)
    for media, params in ranges:
        as_ = params.get("as")
        if media == "application/json" and as_:
            if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                continue
            if as_ == "Table":
                return Output("table")
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return Output("partial", as_ == "PartialObjectMetadataList")
            continue
        if media in ("application/json", "application/*", "*/*", "application/json-seq"):
            return JSON
        if media in ("application/yaml", "application/x-yaml", "text/yaml"):
            return Output("yaml")
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, "
        "application/json;as=Table;v=v1;g=meta.k8s.io")


def decode_body(body: bytes, content_type: str | None, expected_kind: str,
                api_version: str = "") -> dict[str, Any]:
    """The request object. Raises 400 for what does not parse, 415 for unknown media types."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media == "application/vnd.kubernetes.protobuf":
        from pocketkube.api.protobuf import decode as pb_decode

        return pb_decode(body, api_version=api_version, kind=expected_kind)
    if media in ("application/json", ""):
        try:
            obj = orjson.loads(body) if body else None
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {expected_kind}): "
                f"couldn't get version/kind; json parse error: {e}") from None
    elif media in ("application/yaml", "application/x-yaml", "text/yaml"):
        obj = load_yaml(body, expected_kind)
    else:
        raise errors.unsupported_media_type(media)
    if not isinstance(obj, dict):
        raise errors.bad_request(
            f"the object provided is unrecognized (must be of type {expected_kind}): "
            f"couldn't get version/kind; json parse error: the body is not a JSON object")
    return obj


def load_yaml(body: bytes, expected: str) -> Any:
    try:
        return yaml.safe_load(body) if body else None
    except yaml.YAMLError as e:
        raise errors.bad_request(f"error converting YAML to JSON: {e}".replace("\n", " ")) \
            from None


def dump(obj: Any, out: Output) -> tuple[bytes, str]:
    if out.form == "yaml":
        return yaml.safe_dump(obj, sort_keys=False).encode(), "application/yaml"
    return orjson.dumps(obj), "application/json"
