"""Names and string formats: DNS-1123 labels and subdomains, DNS-1035 labels, qualified names,
label values, config keys, port names, percents, and the name rules of each kind.

The checks and their messages follow apimachinery `pkg/util/validation/validation.go` and
`pkg/api/validation/generic.go` word for word (including Go's "'a',  or 'b'" example lists):
users read these messages, and tools match on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pocketkube.api.validation import errs
from pocketkube.api.validation.errs import Cause

# --- string rules -------------------------------------------------------------------------------

QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
             "with an alphanumeric character")
LABEL_VALUE_FMT = f"({QNAME_FMT})?"
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character")
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                     "characters or '-', and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric "
                         "character")
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                     "start with an alphabetic character, and end with an alphanumeric character")
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
C_IDENT_FMT = "[A-Za-z_][A-Za-z0-9_]*"
C_IDENT_MSG = ("a valid C identifier must start with alphabetic character or '_', followed by a "
               "string of alphanumeric characters or '_'")
PERCENT_FMT = "[0-9]+%"
PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"


def _full(fmt: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{fmt})$")


_QNAME = _full(QNAME_FMT)
_LABEL_VALUE = _full(LABEL_VALUE_FMT)
_DNS1123_LABEL = _full(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = _full(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = _full(DNS1035_LABEL_FMT)
_CONFIG_KEY = _full(CONFIG_KEY_FMT)
_C_IDENT = _full(C_IDENT_FMT)
_PERCENT = _full(PERCENT_FMT)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Go appends "'x', " per example and " or " between them: "(e.g. 'a',  or 'b', regex ...)".
    ex = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


def max_len_error(n_: int) -> str:
    return f"must be no more than {n_} characters"


def range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _match(rx: re.Pattern[str], value: str) -> bool:
    # Go's `$` matches only at the very end; Python's would accept a trailing newline.
    return "\n" not in value and rx.match(value) is not None


def is_dns1123_subdomain(value: str) -> list[str]:
    out = []
    if len(value.encode()) > 253:
        out.append(max_len_error(253))
    if not _match(_DNS1123_SUBDOMAIN, value):
        out.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return out


def is_dns1123_label(value: str) -> list[str]:
    out = []
    if len(value.encode()) > 63:
        out.append(max_len_error(63))
    if not _match(_DNS1123_LABEL, value):
        if _match(_DNS1123_SUBDOMAIN, value):
            out.append("must not contain dots")
        else:
            out.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return out


def is_dns1035_label(value: str) -> list[str]:
    out = []
    if len(value.encode()) > 63:
        out.append(max_len_error(63))
    if not _match(_DNS1035_LABEL, value):
        out.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return out


def is_qualified_name(value: str) -> list[str]:
    out: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            out.append("prefix part must be non-empty")
        else:
            out.extend("prefix part " + x for x in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        out.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        out.append("name part " + max_len_error(63))
    if not _match(_QNAME, name):
        out.append("name part " + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc"))
    return out


def is_valid_label_value(value: str) -> list[str]:
    out = []
    if len(value.encode()) > 63:
        out.append(max_len_error(63))
    if not _match(_LABEL_VALUE, value):
        out.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return out


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    out = []
    if len(value.encode()) > 253:
        out.append(max_len_error(253))
    if not _match(_CONFIG_KEY, value):
        out.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return out + _chdir_prefix(value)


def is_c_identifier(value: str) -> list[str]:
    if _match(_C_IDENT, value):
        return []
    return [regex_error(C_IDENT_MSG, C_IDENT_FMT, "my_name", "MY_NAME", "MyName")]


def is_relaxed_env_var_name(value: str) -> list[str]:
    """The env-var rule with RelaxedEnvironmentVariableValidation (beta, on by default in 1.32)."""
    out = []
    if not value:
        out.append("environment variable name must be non-empty")
    if any(ord(c) > 127 or not c.isprintable() or c == "=" for c in value):
        out.append("a valid environment variable name must consist only of printable ASCII "
                   "characters other than '='")
    return out


def is_valid_port_name(port: str) -> list[str]:
    out = []
    if len(port) > 15:
        out.append(max_len_error(15))
    if not re.fullmatch("[-a-z0-9]+", port):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        out.append("must contain at least one letter (a-z)")
    if "--" in port:
        out.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        out.append("must not begin or end with a hyphen")
    return out


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [range_error(1, 65535)]


def is_valid_percent(value: str) -> list[str]:
    if _match(_PERCENT, value):
        return []
    return [regex_error(PERCENT_MSG, PERCENT_FMT, "1%", "93%")]


def dns1123_label(value: str, path: str) -> list[Cause]:
    return [errs.invalid(path, value, msg) for msg in is_dns1123_label(value)]


def dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return [errs.invalid(path, value, msg) for msg in is_dns1123_subdomain(value)]


def qualified_name(value: str, path: str) -> list[Cause]:
    return [errs.invalid(path, value, msg) for msg in is_qualified_name(value)]


# --- names --------------------------------------------------------------------------------------

NameFn = Callable[[str, bool], list[str]]


def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def path_segment_name(name: str, prefix: bool) -> list[str]:
    """`path.ValidatePathSegmentName`: names that only have to be usable in a URL path."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
