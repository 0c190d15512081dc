"""Docker-style image references: parsing, validation and normalization.

Pods name images the way `docker pull` does ("busybox", "nginx:1.27", "ghcr.io/x/y@sha256:…");
the store and skopeo want fully qualified names ("docker.io/library/busybox:latest"). This is the
grammar of github.com/distribution/reference (which the kubelet and containerd use) written out
in Python, because the error texts are part of what users see: an invalid name turns into the
kubelet's InvalidImageName message, word for word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pocketkube.kubelet.runtime.interface import ImageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_IDENTIFIER = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A parsed, normalized reference: `domain/path`, an optional tag and digest."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        # containerd drops the tag of a reference that also has a digest: the digest decides.
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or DEFAULT_TAG}"


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _check_digest(digest: str) -> None:
    algorithm, _, hexpart = digest.partition(":")
    length = _DIGEST_HEX_LENGTH.get(algorithm)
    if length is None:
        raise ValueError("unsupported digest algorithm")
    if len(hexpart) != length:
        raise ValueError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise ValueError("invalid checksum digest format")


def parse(ref: str) -> Reference:
    """Parse `ref` the way distribution/reference's ParseNormalizedNamed does; ValueError
    carries its message ("invalid reference format", "… must be lowercase", …)."""
    if _IDENTIFIER.match(ref):
        raise ValueError(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(ref)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ValueError(f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    match = _REFERENCE.match(full)
    if match is None:
        if not ref:
            raise ValueError("repository name must have at least one component")
        if _REFERENCE.match(full.lower()):
            raise ValueError("repository name must be lowercase")
        raise ValueError("invalid reference format")
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest:
        _check_digest(digest)
    return Reference(domain, name[len(domain) + 1 :], tag, digest)


def _invalid(ref: str, err: ValueError) -> ImageError:
    # The kubelet's InvalidImageName message (pkg/kubelet/images: applyDefaultImageTag).
    return ImageError(
        "InvalidImageName",
        f'Failed to apply default image tag "{ref}": couldn\'t parse image name "{ref}": {err}',
    )


def parse_image(ref: str) -> Reference:
    """parse(), with errors as ImageError("InvalidImageName", <the kubelet's message>)."""
    try:
        return parse(ref)
    except ValueError as err:
        raise _invalid(ref, err) from None


def normalize(ref: str) -> str:
    """The fully qualified reference: busybox → docker.io/library/busybox:latest.
    Raises ImageError(InvalidImageName)."""
    return str(parse_image(ref))


def with_default_tag(ref: str) -> str:
    """The kubelet's own spelling of a reference: the user's string with ":latest" appended
    when it has neither tag nor digest (used in its messages, e.g. ErrImageNeverPull)."""
    parsed = parse_image(ref)
    if not parsed.tag and not parsed.digest:
        return f"{ref}:{DEFAULT_TAG}"
    return ref


def is_image_id(ref: str) -> bool:
    """Whether `ref` is an image id (sha256:<64 hex>, or the 64 hex alone) rather than a name."""
    return bool(_IDENTIFIER.match(ref.removeprefix("sha256:")))


def registry_host(ref: str) -> str:
    """The registry a normalized reference lives in ("docker.io", "localhost:5000")."""
    return parse(ref).domain


def familiar(ref: str) -> tuple[str, str]:
    """(repository, tag) for display, as `crictl images` shows them: the repository keeps its
    domain; a digest reference has tag "<none>"."""
    parsed = parse(ref)
    return parsed.repository, parsed.tag or ("<none>" if parsed.digest else DEFAULT_TAG)
