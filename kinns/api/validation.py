"""Validation: the API server's "no", in the words a real one uses.

A learner who mistypes a manifest should read the same sentence kubectl
prints against a real cluster, e.g. ``spec.ports[0].port: Invalid value: 0:
must be between 1 and 65535, inclusive`` or the famous ``spec.template.
metadata.labels: Invalid value: map[string]string{"app":"b"}: `selector`
does not match template `labels```.  So this module mirrors the checks of
upstream's pkg/apis/core/validation, pkg/apis/apps/validation and
apimachinery's util/validation (v1.32) that users actually run into, with
their field paths and message texts; it does not try to be exhaustive.

Shape: `validate(kind, obj)` runs the metadata checks every kind shares and
then one small function per kind; `validate_update(kind, new, old)` runs
`validate` on the new object and adds the kind's rules about what may not
change.  Objects arrive already defaulted (defaults.py), so a missing
field that defaulting would fill is a real error.  Every check returns a
list of `FieldError`s and never raises, so one request reports all its
problems at once, as upstream does.

Go renders some bad values with `%#v` (maps, slices, structs).  Our
`FieldError` formats JSON-ish values, so those few are pre-rendered into
the detail text by `_raw` and the value slot is left empty.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Callable, Iterable

from . import batchvalidation, containerrules, hpa, ingress, networkpolicy, pdb, replication, storagechecks
from .defaults import parse_quantity, service_update_view
from .errors import (DUPLICATE, FORBIDDEN, INVALID, NOT_FOUND, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY,
                     FieldError)

Obj = dict[str, Any]
Errs = list[FieldError]

# ============================================================ message texts
# apimachinery/pkg/util/validation: the regexes and their explanations.

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_PERCENT_FMT = "[0-9]+%"

_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_ENV_NAME_RE = re.compile(f"^{_ENV_NAME_FMT}$")
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")
_PORT_NAME_CHARS_RE = re.compile("^[-a-z0-9]+$")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError, double space before "or" and all."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


EMPTY_ERROR = "must be non-empty"
PORT_RANGE_ERROR = "must be between 1 and 65535, inclusive"
NON_NEGATIVE = "must be greater than or equal to 0"
IMMUTABLE = "field is immutable"
IP_ERROR = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"

_LABEL_MSG = regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                         "and must start and end with an alphanumeric character", _LABEL_FMT, "my-name", "123-abc")
_SUBDOMAIN_MSG = regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                             "'-' or '.', and must start and end with an alphanumeric character",
                             _SUBDOMAIN_FMT, "example.com")
_DNS1035_MSG = regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                           "an alphabetic character, and end with an alphanumeric character",
                           _DNS1035_FMT, "my-name", "abc-123")
_QNAME_MSG = regex_error("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                         "an alphanumeric character", _QNAME_FMT, "MyName", "my.name", "123-abc")
_LABEL_VALUE_MSG = regex_error("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                               "'_' or '.', and must start and end with an alphanumeric character",
                               _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
_CONFIG_KEY_MSG = regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                              _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name")
_ENV_NAME_MSG = regex_error("a valid environment variable name must consist of alphabetic characters, digits, "
                            "'_', '-', or '.', and must not start with a digit",
                            _ENV_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1")
_PERCENT_MSG = regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                           _PERCENT_FMT, "1%", "93%")

TOTAL_ANNOTATION_SIZE = 256 * 1024
MAX_SECRET_SIZE = 1024 * 1024

POD_UPDATE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
                  "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                  "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                  "(allow it to be set to 1 if it was previously negative)")
STATEFULSET_UPDATE_MSG = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                          "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                          "and 'minReadySeconds' are forbidden")
PVC_UPDATE_MSG = "spec is immutable after creation except resources.requests for bound claims"


# ================================================================= checkers
# Each returns the list of messages upstream's Is* function would.


def _bounded_match(value: str, limit: int, pattern: re.Pattern[str], message: str) -> list[str]:
    """Upstream's shape for name checks: a length limit, then a regular expression."""
    errs = []
    if len(value) > limit:
        errs.append(max_len_error(limit))
    if not pattern.match(value):
        errs.append(message)
    return errs


def is_dns1123_label(value: str) -> list[str]:
    return _bounded_match(value, 63, _LABEL_RE, _LABEL_MSG)


def is_dns1123_subdomain(value: str) -> list[str]:
    return _bounded_match(value, 253, _SUBDOMAIN_RE, _SUBDOMAIN_MSG)


def is_dns1035_label(value: str) -> list[str]:
    return _bounded_match(value, 63, _DNS1035_RE, _DNS1035_MSG)


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return [f"a qualified name {_QNAME_MSG} with an optional DNS subdomain prefix and '/' "
                f"(e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QNAME_RE.match(name):
        errs.append("name part " + _QNAME_MSG)
    return errs


def is_label_value(value: str) -> list[str]:
    return _bounded_match(value, 63, _LABEL_VALUE_RE, _LABEL_VALUE_MSG)


def is_port_name(value: str) -> list[str]:
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARS_RE.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    elif not _PORT_NAME_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_config_key(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY_RE.match(value):
        errs.append(_CONFIG_KEY_MSG)
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except (ValueError, TypeError):
        return False


# ============================================================ Go rendering


def go_string_map(value: Any) -> str:
    """`map[string]string{"a":"b", "c":"d"}` as Go's %#v prints a map (keys sorted)."""
    if value is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{json.dumps(str(k))}:{json.dumps(str(v))}" for k, v in sorted(dict(value).items()))
    return "map[string]string{" + items + "}"


def go_string_slice(value: Any) -> str:
    if value is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in value) + "}"


def go_label_selector(sel: Any) -> str:
    sel = sel if isinstance(sel, dict) else {}
    exprs = sel.get("matchExpressions")
    if exprs is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = "[]v1.LabelSelectorRequirement{" + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:{json.dumps(str(e.get("key", "")))}, '
            f'Operator:{json.dumps(str(e.get("operator", "")))}, Values:{go_string_slice(e.get("values"))}}}'
            for e in exprs if isinstance(e, dict)) + "}"
    return f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels'))}, MatchExpressions:{rendered}}}"


def go_int_or_string(value: Any) -> str:
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value if isinstance(value, int) else 0}, StrVal:""}}'


def _raw(kind: str, path: str, rendered: str, detail: str = "") -> FieldError:
    """A FieldError whose bad value is already rendered Go-style."""
    return FieldError(kind, path, detail=f"{rendered}: {detail}" if detail else rendered)


def _not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    return FieldError(NOT_SUPPORTED, path, value, "supported values: " + ", ".join(json.dumps(s) for s in supported))


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, path, detail=detail)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, path, detail=detail)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(INVALID, path, value, detail)


def _each(path: str, value: Any, msgs: list[str]) -> Errs:
    return [_invalid(path, value, m) for m in msgs]


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _non_negative(path: str, value: Any) -> Errs:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [_invalid(path, value, NON_NEGATIVE)]
    return []


def _port_num(path: str, value: Any) -> Errs:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return [_invalid(path, value, PORT_RANGE_ERROR)]
    return []


def _port_num_or_name(path: str, value: Any) -> Errs:
    if isinstance(value, str):
        if not value:
            return [_required(path)]
        return _each(path, value, is_port_name(value))
    return _port_num(path, value)


# ================================================================ metadata

CLUSTER_SCOPED = frozenset({"Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
                            "ClusterRoleBinding", "APIService", "CustomResourceDefinition",
                            "IngressClass"})

NameCheck = Callable[[str], list[str]]
def is_path_segment_name(name: str) -> list[str]:
    """path.IsValidPathSegmentName: what RBAC names must be (`system:coredns` is fine)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


_NAME_CHECK: dict[str, NameCheck] = {
    "Namespace": is_dns1123_label,
    "Service": is_dns1035_label,
    "Role": is_path_segment_name,
    "ClusterRole": is_path_segment_name,
    "RoleBinding": is_path_segment_name,
    "ClusterRoleBinding": is_path_segment_name,
}


def validate_labels(labels: Any, path: str) -> Errs:
    errs: Errs = []
    for k, v in _as_dict(labels).items():
        errs += _each(path, k, is_qualified_name(str(k)))
        if not isinstance(v, str):
            errs.append(_invalid(path, v, "must be a string"))
        else:
            errs += _each(path, v, is_label_value(v))
    return errs


def validate_annotations(annotations: Any, path: str) -> Errs:
    errs: Errs = []
    total = 0
    for k, v in _as_dict(annotations).items():
        errs += _each(path, k, is_qualified_name(str(k).lower()))
        total += len(str(k)) + len(str(v))
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(FieldError(TOO_LONG, path, detail=f"may not be more than {TOTAL_ANNOTATION_SIZE} bytes"))
    return errs


def validate_metadata(kind: str, obj: Obj) -> Errs:
    """ValidateObjectMeta: name, namespace, labels, annotations, finalizers."""
    meta = _as_dict(obj.get("metadata"))
    errs: Errs = []
    name = meta.get("name") or ""
    if not name:
        errs.append(_required("metadata.name", "name or generateName is required"))
    else:
        errs += _each("metadata.name", name, _NAME_CHECK.get(kind, is_dns1123_subdomain)(str(name)))
    ns = meta.get("namespace") or ""
    if kind in CLUSTER_SCOPED:
        if ns:
            errs.append(_forbidden("metadata.namespace", "not allowed on this type"))
    elif not ns:
        errs.append(_required("metadata.namespace"))
    else:
        errs += _each("metadata.namespace", ns, is_dns1123_label(str(ns)))
    errs += validate_labels(meta.get("labels"), "metadata.labels")
    errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
    for fin in meta.get("finalizers") or []:
        errs += _each("metadata.finalizers", fin, is_qualified_name(str(fin)))
    return errs


def validate_label_selector(sel: Any, path: str) -> Errs:
    """ValidateLabelSelector: matchLabels as labels, matchExpressions' operators."""
    sel = _as_dict(sel)
    errs = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(_dicts(sel.get("matchExpressions"))):
        p = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(_required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(_forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(_invalid(f"{p}.operator", op, "not a valid selector operator"))
        errs += _each(f"{p}.key", expr.get("key", ""), is_qualified_name(str(expr.get("key", ""))))
    return errs


def selector_matches(sel: Any, labels: Any) -> bool:
    """Does a LabelSelector (matchLabels + matchExpressions) select these labels?"""
    sel, labels = _as_dict(sel), _as_dict(labels)
    for k, v in _as_dict(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for expr in _dicts(sel.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ===================================================================== pods

_VOLUME_SOURCES = ("emptyDir", "hostPath", "configMap", "secret", "persistentVolumeClaim", "projected",
                   "downwardAPI", "nfs", "csi", "ephemeral", "iscsi", "local", "image", "gitRepo")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _validate_volumes(volumes: Any, path: str) -> tuple[set[str], Errs]:
    errs: Errs = []
    names: set[str] = set()
    for i, v in enumerate(_dicts(volumes)):
        p = f"{path}[{i}]"
        name = v.get("name") or ""
        if not name:
            errs.append(_required(f"{p}.name"))
        else:
            errs += _each(f"{p}.name", name, is_dns1123_label(str(name)))
            if name in names:
                errs.append(FieldError(DUPLICATE, f"{p}.name", name))
            names.add(name)
        sources = [s for s in v if s != "name"]
        if not sources:
            errs.append(_required(p, "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(_forbidden(f"{p}.{extra}", "may not specify more than 1 volume type"))
        src = _as_dict(v.get(sources[0])) if sources else {}
        first = sources[0] if sources else ""
        for source, key in (("configMap", "name"), ("secret", "secretName"), ("hostPath", "path"),
                            ("persistentVolumeClaim", "claimName")):
            if first == source and not src.get(key):
                errs.append(_required(f"{p}.{source}.{key}"))
    return names, errs


def _validate_probe(probe: Any, path: str, liveness_like: bool) -> Errs:
    if not isinstance(probe, dict):
        return []
    errs: Errs = []
    handlers = [h for h in _PROBE_HANDLERS if h in probe]
    if not handlers:
        errs.append(_required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        errs.append(_forbidden(f"{path}.{extra}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += _non_negative(f"{path}.{key}", probe.get(key))
    if liveness_like and probe.get("successThreshold", 1) != 1:
        errs.append(_invalid(f"{path}.successThreshold", probe.get("successThreshold"), "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        errs += _port_num_or_name(f"{path}.httpGet.port", http.get("port", 0))
        if http.get("scheme") not in ("HTTP", "HTTPS"):
            errs.append(_not_supported(f"{path}.httpGet.scheme", http.get("scheme"), ["HTTP", "HTTPS"]))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += _port_num_or_name(f"{path}.tcpSocket.port", tcp.get("port", 0))
    exec_ = probe.get("exec")
    if isinstance(exec_, dict) and not exec_.get("command"):
        errs.append(_required(f"{path}.exec.command"))
    return errs


def _validate_resources(res: Any, path: str) -> Errs:
    res = _as_dict(res)
    errs: Errs = []
    requests, limits = _as_dict(res.get("requests")), _as_dict(res.get("limits"))
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            q = parse_quantity(value)
            p = f"{path}.{section}[{name}]"
            if q is None:
                errs.append(_invalid(p, value, "must be a valid quantity"))
            elif q < 0:
                errs.append(_invalid(p, str(value), NON_NEGATIVE))
    for name, value in requests.items():
        if name in limits:
            rq, lq = parse_quantity(value), parse_quantity(limits[name])
            if rq is not None and lq is not None and rq > lq:
                errs.append(_invalid(f"{path}.requests", str(value),
                                     f"must be less than or equal to {name} limit of {limits[name]}"))
    return errs


def _validate_container(c: Obj, path: str, volumes: set[str], init: bool) -> Errs:
    errs: Errs = []
    image = c.get("image")
    if not image:
        errs.append(_required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        errs.append(_invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    policy = c.get("imagePullPolicy")
    if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
        errs.append(_not_supported(f"{path}.imagePullPolicy", policy, ["Always", "IfNotPresent", "Never"]))
    port_names: set[str] = set()
    for i, port in enumerate(_dicts(c.get("ports"))):
        p = f"{path}.ports[{i}]"
        name = port.get("name")
        if name:
            errs += _each(f"{p}.name", name, is_port_name(str(name)))
            if name in port_names:
                errs.append(FieldError(DUPLICATE, f"{p}.name", name))
            port_names.add(name)
        if not port.get("containerPort"):
            errs.append(_required(f"{p}.containerPort"))
        else:
            errs += _port_num(f"{p}.containerPort", port["containerPort"])
        if port.get("hostPort"):
            errs += _port_num(f"{p}.hostPort", port["hostPort"])
        proto = port.get("protocol")
        if proto not in ("TCP", "UDP", "SCTP"):
            errs.append(_not_supported(f"{p}.protocol", proto, ["SCTP", "TCP", "UDP"]))
    for i, env in enumerate(_dicts(c.get("env"))):
        p = f"{path}.env[{i}]"
        name = env.get("name") or ""
        if not name:
            errs.append(_required(f"{p}.name"))
        elif not _ENV_NAME_RE.match(str(name)):
            errs.append(_invalid(f"{p}.name", name, _ENV_NAME_MSG))
        if env.get("value") and env.get("valueFrom"):
            errs.append(_invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
    mount_paths: set[str] = set()
    for i, m in enumerate(_dicts(c.get("volumeMounts"))):
        p = f"{path}.volumeMounts[{i}]"
        name = m.get("name") or ""
        if not name:
            errs.append(_required(f"{p}.name"))
        elif name not in volumes:
            errs.append(FieldError(NOT_FOUND, f"{p}.name", name))
        mp = m.get("mountPath") or ""
        if not mp:
            errs.append(_required(f"{p}.mountPath"))
        elif mp in mount_paths:
            errs.append(_invalid(f"{p}.mountPath", mp, "must be unique"))
        mount_paths.add(mp)
        errs += storagechecks.volume_mount_errors(m, f"{path}.volumeMounts", p)
    errs += _validate_resources(c.get("resources"), f"{path}.resources")
    for probe in _PROBES:
        if init and probe in c and c.get("restartPolicy") != "Always":
            errs.append(_forbidden(f"{path}.{probe}", "may not be set for init containers without restartPolicy=Always"))
            continue
        errs += _validate_probe(c.get(probe), f"{path}.{probe}", probe != "readinessProbe")
    return errs


_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _validate_tolerations(tolerations: Any, path: str) -> Errs:
    errs: Errs = []
    for i, t in enumerate(_dicts(tolerations)):
        p = f"{path}[{i}]"
        key, op, effect = str(t.get("key") or ""), t.get("operator") or "", t.get("effect") or ""
        if key:
            errs += _each(f"{p}.key", key, is_qualified_name(key))
        elif op != "Exists":
            errs.append(_invalid(f"{p}.operator", op,
                                 'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(_invalid(f"{p}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            value_errs = is_label_value(str(t.get("value") or ""))
            if value_errs:
                errs.append(_invalid(f"{p}.operator", t.get("value"), ";".join(value_errs)))
        elif op == "Exists":
            if t.get("value"):
                errs.append(_invalid(f"{p}.operator", t.get("value"), "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(_not_supported(f"{p}.operator", op, ["Equal", "Exists"]))
        if effect and effect not in _TAINT_EFFECTS:
            errs.append(_not_supported(f"{p}.effect", effect, _TAINT_EFFECTS))
    return errs


def validate_pod_spec(spec: Any, path: str, extra_volumes: Iterable[str] = ()) -> Errs:
    """ValidatePodSpec: shared by Pods and every pod template."""
    spec = _as_dict(spec)
    volumes, errs = _validate_volumes(spec.get("volumes"), f"{path}.volumes")
    volumes |= set(extra_volumes)
    containers = spec.get("containers")
    if not containers:
        errs.append(_required(f"{path}.containers"))
    names: set[str] = set()
    host_ports: set[str] = set()
    for key, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(_dicts(spec.get(key))):
            p = f"{path}.{key}[{i}]"
            name = c.get("name") or ""
            if not name:
                errs.append(_required(f"{p}.name"))
            else:
                errs += _each(f"{p}.name", name, is_dns1123_label(str(name)))
                if name in names:
                    errs.append(FieldError(DUPLICATE, f"{p}.name", name))
                names.add(name)
            errs += _validate_container(c, p, volumes, init)
            errs += containerrules.container_errors(c, p, init, spec.get("terminationGracePeriodSeconds"))
            if init:
                continue
            for j, port in enumerate(_dicts(c.get("ports"))):
                if port.get("hostPort"):
                    key_ = f"{port.get('protocol', 'TCP')}/{port.get('hostIP', '')}/{port['hostPort']}"
                    if key_ in host_ports:
                        errs.append(FieldError(DUPLICATE, f"{p}.ports[{j}].hostPort", key_))
                    host_ports.add(key_)
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(_required(f"{path}.restartPolicy"))
    elif restart not in ("Always", "OnFailure", "Never"):
        errs.append(_not_supported(f"{path}.restartPolicy", restart, ["Always", "OnFailure", "Never"]))
    dns = spec.get("dnsPolicy")
    if dns not in ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        errs.append(_not_supported(f"{path}.dnsPolicy", dns, ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]))
    elif dns == "None" and not spec.get("dnsConfig"):
        errs.append(_required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    for field_, check in (("nodeName", is_dns1123_subdomain), ("hostname", is_dns1123_label),
                          ("subdomain", is_dns1123_label), ("serviceAccountName", is_dns1123_subdomain)):
        value = spec.get(field_)
        if value:
            errs += _each(f"{path}.{field_}", value, check(str(value)))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or not 1 <= ads <= 2147483647):
        errs.append(_invalid(f"{path}.activeDeadlineSeconds", ads, "must be between 1 and 2147483647, inclusive"))
    errs += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errs += _validate_tolerations(spec.get("tolerations"), f"{path}.tolerations")
    return errs


def validate_pod_template(template: Any, path: str, extra_volumes: Iterable[str] = ()) -> Errs:
    template = _as_dict(template)
    meta = _as_dict(template.get("metadata"))
    errs = validate_labels(meta.get("labels"), f"{path}.metadata.labels")
    errs += validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations")
    return errs + validate_pod_spec(template.get("spec"), f"{path}.spec", extra_volumes)


def _pod(obj: Obj) -> Errs:
    return validate_pod_spec(obj.get("spec"), "spec")


def _pod_update(new: Obj, old: Obj) -> Errs:
    """Only images, activeDeadlineSeconds, added tolerations and a grace fix may change."""
    nspec, ospec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
    munged = json.loads(json.dumps(nspec))
    for key in ("containers", "initContainers"):
        ncs, ocs = _dicts(munged.get(key)), _dicts(ospec.get(key))
        if len(ncs) == len(ocs):
            for nc, oc in zip(ncs, ocs):
                if "image" in oc:
                    nc["image"] = oc["image"]
    errs: Errs = []
    new_ads, old_ads = nspec.get("activeDeadlineSeconds"), ospec.get("activeDeadlineSeconds")
    if old_ads is not None and (new_ads is None or (isinstance(new_ads, int) and new_ads > old_ads)):
        errs.append(_invalid("spec.activeDeadlineSeconds", new_ads, "must be less than or equal to previous value"))
    _restore(munged, ospec, "activeDeadlineSeconds")
    old_tol = ospec.get("tolerations") or []
    new_tol = munged.get("tolerations") or []
    if all(t in new_tol for t in old_tol):
        _restore(munged, ospec, "tolerations")
    old_grace = ospec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        _restore(munged, ospec, "terminationGracePeriodSeconds")
    gates_old, gates_new = ospec.get("schedulingGates") or [], munged.get("schedulingGates") or []
    if all(g in gates_old for g in gates_new):  # removing scheduling gates is allowed
        _restore(munged, ospec, "schedulingGates")
    if munged != ospec:
        errs.append(_forbidden("spec", POD_UPDATE_MSG + "\n" + _spec_diff("core.PodSpec", ospec, munged)))
    return errs


def _restore(target: Obj, source: Obj, key: str) -> None:
    if key in source:
        target[key] = source[key]
    else:
        target.pop(key, None)


def _spec_diff(type_name: str, old: Obj, new: Obj) -> str:
    """A short diff in the spirit of the cmp.Diff upstream appends."""
    lines = [f"  {type_name}{{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            field_ = key[:1].upper() + key[1:]
            if key in old:
                lines.append(f"- \t{field_}: {json.dumps(old[key], sort_keys=True)},")
            if key in new:
                lines.append(f"+ \t{field_}: {json.dumps(new[key], sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines)


# ================================================================ workloads

# Upstream's per-kind wording for an empty selector (StatefulSet's differs).
_EMPTY_SELECTOR_MSG = {"Deployment": "empty selector is invalid for deployment",
                       "ReplicaSet": "empty selector is invalid for deployment",
                       "StatefulSet": "empty selector is invalid for statefulset",
                       "DaemonSet": "empty selector is invalid for daemonset"}


def _selector(kind: str, spec: Obj, required: bool = True) -> Errs:
    """Selector present (where required), well formed and not empty."""
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        return [_required("spec.selector")] if required else []
    errs = validate_label_selector(sel, "spec.selector")
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        errs.append(_raw(INVALID, "spec.selector", go_label_selector(sel), _EMPTY_SELECTOR_MSG[kind]))
    return errs


def _template_match(spec: Obj) -> Errs:
    """The template's labels must be selected by the selector.

    A missing selector selects nothing (so it never matches), an empty one
    selects everything (so it is not checked here), as upstream's
    LabelSelectorAsSelector has it.
    """
    sel = spec.get("selector")
    template = _as_dict(spec.get("template"))
    labels = _as_dict(template.get("metadata")).get("labels")
    if isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions"):
        return []
    if isinstance(sel, dict) and selector_matches(sel, labels):
        return []
    return [_raw(INVALID, "spec.template.metadata.labels", go_string_map(labels),
                 "`selector` does not match template `labels`")]


def _template_rules(kind: str, spec: Obj) -> Errs:
    """A controller's pods restart Always and have no deadline."""
    tspec = _as_dict(_as_dict(spec.get("template")).get("spec"))
    errs: Errs = []
    restart = tspec.get("restartPolicy")
    if restart != "Always":
        errs.append(_not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(_forbidden("spec.template.spec.activeDeadlineSeconds",
                               f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _replicaset_like(kind: str, spec: Obj) -> Errs:
    """ValidatePodTemplateSpecForReplicaSet, after the selector checks (Deployment, ReplicaSet)."""
    errs = _selector(kind, spec)
    if not isinstance(spec.get("template"), dict):
        return errs + [_required("spec.template")]
    errs += _template_match(spec)
    errs += validate_pod_template(spec["template"], "spec.template")
    return errs + _template_rules(kind, spec)


def _int_or_percent(path: str, value: Any) -> Errs:
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [_raw(INVALID, path, go_int_or_string(value), _PERCENT_MSG)]
        return []
    return _non_negative(path, value)


def _int_or_percent_value(value: Any) -> int:
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT_RE.match(value) else 0
    return value if isinstance(value, int) else 0


def _not_over_100(path: str, value: Any) -> Errs:
    if isinstance(value, str) and _PERCENT_RE.match(value) and int(value[:-1]) > 100:
        return [_raw(INVALID, path, go_int_or_string(value), "must not be greater than 100%")]
    return []


def _deployment(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    errs += _replicaset_like("Deployment", spec)
    strategy = _as_dict(spec.get("strategy"))
    stype = strategy.get("type")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            errs.append(_forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate":
        ru = _as_dict(strategy.get("rollingUpdate"))
        p = "spec.strategy.rollingUpdate"
        mu, ms = ru.get("maxUnavailable", 0), ru.get("maxSurge", 0)
        errs += _int_or_percent(f"{p}.maxUnavailable", mu) + _int_or_percent(f"{p}.maxSurge", ms)
        if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
            errs.append(_raw(INVALID, f"{p}.maxUnavailable", go_int_or_string(mu), "may not be 0 when `maxSurge` is 0"))
        errs += _not_over_100(f"{p}.maxUnavailable", mu)
    else:
        rendered = (f"apps.DeploymentStrategy{{Type:{json.dumps(str(stype or ''))}, "
                    f"RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}")
        errs.append(_raw(NOT_SUPPORTED, "spec.strategy", rendered, 'supported values: "Recreate", "RollingUpdate"'))
    for key in ("minReadySeconds", "revisionHistoryLimit"):
        errs += _non_negative(f"spec.{key}", spec.get(key))
    pds = spec.get("progressDeadlineSeconds")
    if isinstance(pds, int):
        errs += _non_negative("spec.progressDeadlineSeconds", pds)
        if pds <= (spec.get("minReadySeconds") or 0):
            errs.append(_invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    return errs


def _replicaset(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    errs += _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    return errs + _replicaset_like("ReplicaSet", spec)


def _statefulset(obj: Obj) -> Errs:
    """ValidateStatefulSetSpec.  Upstream does not validate the template's pod
    spec here (it is judged when the controller creates the pods), only its
    labels and annotations, and so neither do we."""
    spec = _as_dict(obj.get("spec"))
    errs: Errs = []
    pmp = spec.get("podManagementPolicy")
    if not pmp:
        errs.append(_required("spec.podManagementPolicy"))
    elif pmp not in ("OrderedReady", "Parallel"):
        errs.append(_invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    strategy = _as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if not stype:
        errs.append(_required("spec.updateStrategy"))
    elif stype == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            ru = _as_dict(strategy["rollingUpdate"])
            rendered = (f"&apps.RollingUpdateStatefulSetStrategy{{Partition:{ru.get('partition', 0)}, "
                        f"MaxUnavailable:(*intstr.IntOrString)(nil)}}")
            errs.append(_raw(INVALID, "spec.updateStrategy.rollingUpdate", rendered,
                             "only allowed for updateStrategy 'RollingUpdate'"))
    elif stype == "RollingUpdate":
        ru = _as_dict(strategy.get("rollingUpdate"))
        errs += _non_negative("spec.updateStrategy.rollingUpdate.partition", ru.get("partition"))
    else:
        rendered = (f"apps.StatefulSetUpdateStrategy{{Type:{json.dumps(str(stype))}, "
                    f"RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}")
        errs.append(_raw(INVALID, "spec.updateStrategy", rendered, "must be 'RollingUpdate' or 'OnDelete'"))
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(policy, dict):
        for key in ("whenDeleted", "whenScaled"):
            if policy.get(key) not in ("Delete", "Retain"):
                errs.append(_not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", policy.get(key),
                                           ["Retain", "Delete"]))
    errs += _non_negative("spec.replicas", spec.get("replicas"))
    errs += _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errs += _selector("StatefulSet", spec)
    template = _as_dict(spec.get("template"))
    errs += _template_match(spec)
    meta = _as_dict(template.get("metadata"))
    errs += validate_labels(meta.get("labels"), "spec.template.labels")
    errs += validate_annotations(meta.get("annotations"), "spec.template.annotations")
    errs += _template_rules("StatefulSet", spec)
    for i, vct in enumerate(_dicts(spec.get("volumeClaimTemplates"))):
        errs += _pvc_spec(_as_dict(vct.get("spec")), f"spec.volumeClaimTemplates[{i}].spec")
    return errs


def _daemonset(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs: Errs = []
    sel = spec.get("selector")
    if isinstance(sel, dict):
        errs += validate_label_selector(sel, "spec.selector")
    errs += _template_match(spec)
    if isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions"):
        errs.append(_raw(INVALID, "spec.selector", go_label_selector(sel), _EMPTY_SELECTOR_MSG["DaemonSet"]))
    errs += validate_pod_template(spec.get("template"), "spec.template")
    errs += _template_rules("DaemonSet", spec)
    errs += _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    strategy = _as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if stype == "RollingUpdate":
        if not isinstance(strategy.get("rollingUpdate"), dict):
            errs.append(_required("spec.updateStrategy.rollingUpdate"))
        else:
            ru = strategy["rollingUpdate"]
            p = "spec.updateStrategy.rollingUpdate"
            mu, ms = ru.get("maxUnavailable", 0), ru.get("maxSurge", 0)
            errs += _int_or_percent(f"{p}.maxUnavailable", mu) + _int_or_percent(f"{p}.maxSurge", ms)
            errs += _not_over_100(f"{p}.maxUnavailable", mu) + _not_over_100(f"{p}.maxSurge", ms)
            has_mu, has_ms = _int_or_percent_value(mu) != 0, _int_or_percent_value(ms) != 0
            if has_mu and has_ms:
                errs.append(_raw(INVALID, f"{p}.maxSurge", go_int_or_string(ms),
                                 "may not be set when maxUnavailable is non-zero"))
            elif not has_mu and not has_ms:
                errs.append(_required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    elif stype != "OnDelete":
        rendered = (f"apps.DaemonSetUpdateStrategy{{Type:{json.dumps(str(stype or ''))}, "
                    f"RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}")
        errs.append(_raw(NOT_SUPPORTED, "spec.updateStrategy", rendered, 'supported values: "RollingUpdate", "OnDelete"'))
    errs += _non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


def _selector_immutable(new: Obj, old: Obj) -> Errs:
    nsel, osel = _as_dict(new.get("spec")).get("selector"), _as_dict(old.get("spec")).get("selector")
    if nsel != osel:
        return [_raw(INVALID, "spec.selector", go_label_selector(nsel), IMMUTABLE)]
    return []


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _statefulset_update(new: Obj, old: Obj) -> Errs:
    nspec, ospec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
    rest_new = {k: v for k, v in nspec.items() if k not in _STS_MUTABLE}
    rest_old = {k: v for k, v in ospec.items() if k not in _STS_MUTABLE}
    if rest_new != rest_old:
        return [_forbidden("spec", STATEFULSET_UPDATE_MSG)]
    return []


# ================================================================= services

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service_port_key(port: Obj) -> str:
    return (f'core.ServicePort{{Name:"", Protocol:{json.dumps(str(port.get("protocol", "")))}, '
            f'AppProtocol:(*string)(nil), Port:{port.get("port", 0)}, '
            f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _service_port(port: Obj, p: str, require_name: bool, names: set[str]) -> Errs:
    errs: Errs = []
    name = port.get("name") or ""
    if require_name and not name:
        errs.append(_required(f"{p}.name"))
    elif name:
        errs += _each(f"{p}.name", name, is_dns1123_label(str(name)))
        if name in names:
            errs.append(FieldError(DUPLICATE, f"{p}.name", name))
        names.add(name)
    errs += _port_num(f"{p}.port", port.get("port", 0))
    proto = port.get("protocol")
    if not proto:
        errs.append(_required(f"{p}.protocol"))
    elif proto not in ("TCP", "UDP", "SCTP"):
        errs.append(_not_supported(f"{p}.protocol", proto, ["SCTP", "TCP", "UDP"]))
    errs += _port_num_or_name(f"{p}.targetPort", port.get("targetPort", 0))
    if port.get("appProtocol"):
        errs += _each(f"{p}.appProtocol", port["appProtocol"], is_qualified_name(str(port["appProtocol"])))
    return errs


def _service_cluster_ips(spec: Obj) -> Errs:
    """ValidateServiceClusterIPsRelatedFields (ExternalName is judged elsewhere)."""
    if spec.get("type") == "ExternalName":
        return []
    errs: Errs = []
    ips = spec.get("clusterIPs") or []
    if spec.get("clusterIP"):
        if not ips:
            errs.append(_required("spec.clusterIPs"))
        elif ips[0] != spec["clusterIP"]:
            errs.append(_raw(INVALID, "spec.clusterIPs", go_string_slice(ips), "first value must match `clusterIP`"))
    elif ips:
        errs.append(_raw(INVALID, "spec.clusterIPs", go_string_slice(ips), "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam not in ("IPv4", "IPv6"):
            errs.append(_not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
        if fam in seen:
            errs.append(FieldError(DUPLICATE, f"spec.ipFamilies[{i}]", fam))
        seen.add(fam)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        errs.append(_not_supported("spec.ipFamilyPolicy", policy, ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                errs.append(_raw(INVALID, "spec.clusterIPs", go_string_slice(ips), "'None' must be the first and only value"))
            continue
        if not is_ip(ip):
            errs.append(_invalid(f"spec.clusterIPs[{i}]", ip, IP_ERROR))
    if len(ips) > 2:
        errs.append(_raw(INVALID, "spec.clusterIPs", go_string_slice(ips), "may only hold up to 2 values"))
    return errs


def _service(obj: Obj) -> Errs:
    """ValidateService, in upstream's order (the order of the messages)."""
    spec = _as_dict(obj.get("spec"))
    errs: Errs = []
    stype = spec.get("type")
    ips = spec.get("clusterIPs") or []
    headless = bool(ips) and ips[0] == "None"
    ports = spec.get("ports") or []
    if not ports and not headless and stype != "ExternalName":
        errs.append(_required("spec.ports"))
    if stype in ("LoadBalancer", "NodePort") and headless:
        errs.append(_invalid("spec.clusterIPs[0]", ips[0], f"may not be set to 'None' for {stype} services"))
    elif stype == "ExternalName":
        if ips:
            errs.append(_forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(_forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(_forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = str(spec.get("externalName") or "")
        cname = cname[:-1] if cname.endswith(".") else cname
        if cname:
            errs += _each("spec.externalName", cname, is_dns1123_subdomain(cname))
        else:
            errs.append(_required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        if isinstance(port, dict):
            errs += _service_port(port, f"spec.ports[{i}]", len(ports) > 1, names)
    if spec.get("selector") is not None:
        errs += validate_labels(spec.get("selector"), "spec.selector")
    affinity = spec.get("sessionAffinity")
    if not affinity:
        errs.append(_required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        errs.append(_not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    if affinity == "ClientIP":
        timeout = _as_dict(_as_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
        if not isinstance(timeout, int) or not 0 < timeout <= 86400:
            errs.append(_invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                 "must be greater than 0 and less than 86400"))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(_forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    errs += _service_cluster_ips(spec)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if not is_ip(ip):
            errs.append(_invalid(f"spec.externalIPs[{i}]", ip, IP_ERROR))
    if not stype:
        errs.append(_required("spec.type"))
    elif stype not in _SERVICE_TYPES:
        errs.append(_not_supported("spec.type", stype, _SERVICE_TYPES))
    if stype == "ClusterIP":
        for i, port in enumerate(_dicts(ports)):
            if port.get("nodePort"):
                errs.append(_forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(_dicts(ports)):
        if port.get("nodePort"):
            key = (port.get("protocol"), port["nodePort"])
            if key in node_ports:
                errs.append(FieldError(DUPLICATE, f"spec.ports[{i}].nodePort", port["nodePort"]))
            node_ports.add(key)
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(_dicts(ports)):
        key2 = (port.get("protocol"), port.get("port"))
        if key2 in seen:
            errs.append(_raw(DUPLICATE, f"spec.ports[{i}]", _service_port_key(port)))
        seen.add(key2)
    if spec.get("loadBalancerSourceRanges") and stype != "LoadBalancer":
        errs.append(_forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errs.append(_forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(_required("allocateLoadBalancerNodePorts"))
    accessible = stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and bool(spec.get("externalIPs")))
    etp = spec.get("externalTrafficPolicy")
    if not accessible:
        if etp:
            errs.append(_invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"))
    elif not etp:
        errs.append(_required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        errs.append(_not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    # healthCheckNodePort is allocated after validation here, so only its misuse is judged.
    if spec.get("healthCheckNodePort") and not (stype == "LoadBalancer" and etp == "Local"):
        errs.append(_invalid("spec.healthCheckNodePort", spec["healthCheckNodePort"],
                             "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif spec.get("healthCheckNodePort"):
        errs += _port_num("spec.healthCheckNodePort", spec["healthCheckNodePort"])
    itp = spec.get("internalTrafficPolicy")
    if itp is None:
        if stype in ("NodePort", "LoadBalancer", "ClusterIP"):
            errs.append(_required("spec.internalTrafficPolicy"))
    elif itp not in ("Cluster", "Local"):
        errs.append(_not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    return errs


def _service_update(new: Obj, old: Obj) -> Errs:
    """Cluster IPs may not change, except to or from ExternalName and for headless."""
    nspec, ospec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
    errs: Errs = []
    if _needs_hc(nspec) and _needs_hc(ospec) and nspec.get("healthCheckNodePort") != ospec.get("healthCheckNodePort"):
        errs.append(_forbidden("spec.healthCheckNodePort", IMMUTABLE))
    return errs + _cluster_ips_update(nspec, ospec)


def _needs_hc(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _cluster_ips_update(nspec: Obj, ospec: Obj) -> Errs:
    if "ExternalName" in (nspec.get("type"), ospec.get("type")):
        return []
    nips, oips = nspec.get("clusterIPs") or [], ospec.get("clusterIPs") or []
    if nips[:1] == ["None"] and oips[:1] == ["None"]:
        return []
    errs: Errs = []
    if len(nips) == len(oips):
        for i, ip in enumerate(oips):
            if nips[i] != ip:
                errs.append(_raw(INVALID, f"spec.clusterIPs[{i}]", go_string_slice(nips), "may not change once set"))
    elif len(oips) > len(nips):
        if not nips:
            errs.append(_raw(INVALID, "spec.clusterIPs[0]", go_string_slice(nips), "primary clusterIP can not be unset"))
        elif nips[0] != oips[0]:
            errs.append(_raw(INVALID, "spec.clusterIPs[0]", go_string_slice(nips), "may not change once set"))
    elif oips and nips[0] != oips[0]:
        errs.append(_raw(INVALID, "spec.clusterIPs[0]", go_string_slice(nips), "may not change once set"))
    return errs


def _endpointslice(obj: Obj) -> Errs:
    errs: Errs = []
    at = obj.get("addressType")
    if not at:
        errs.append(_required("addressType"))
    elif at not in ("IPv4", "IPv6", "FQDN"):
        errs.append(_not_supported("addressType", at, ["FQDN", "IPv4", "IPv6"]))
    endpoints = obj.get("endpoints") or []
    if len(endpoints) > 1000:
        errs.append(FieldError(TOO_MANY, "endpoints", len(endpoints), "must have at most 1000 items"))
    for i, ep in enumerate(_dicts(endpoints)):
        p = f"endpoints[{i}].addresses"
        addrs = ep.get("addresses") or []
        if not addrs:
            errs.append(_required(p, "must contain at least 1 address"))
        for j, addr in enumerate(addrs):
            if at == "IPv4" and not (is_ip(addr) and ipaddress.ip_address(addr).version == 4):
                errs.append(_invalid(f"{p}[{j}]", addr, "must be a valid IPv4 address"))
            elif at == "IPv6" and not (is_ip(addr) and ipaddress.ip_address(addr).version == 6):
                errs.append(_invalid(f"{p}[{j}]", addr, "must be a valid IPv6 address"))
            elif at == "FQDN":
                errs += _each(f"{p}[{j}]", addr, is_dns1123_subdomain(str(addr)))
        if ep.get("hostname"):
            errs += _each(f"endpoints[{i}].hostname", ep["hostname"], is_dns1123_label(str(ep["hostname"])))
    names: set[str] = set()
    for i, port in enumerate(_dicts(obj.get("ports"))):
        p = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errs += _each(f"{p}.name", name, is_dns1123_label(str(name)))
        if name in names:
            errs.append(FieldError(DUPLICATE, f"{p}.name", name))
        names.add(name)
        if port.get("port") is not None:
            errs += _port_num(f"{p}.port", port["port"])
        if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
            errs.append(_not_supported(f"{p}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"]))
    return errs


def _endpointslice_update(new: Obj, old: Obj) -> Errs:
    if new.get("addressType") != old.get("addressType"):
        return [_invalid("addressType", new.get("addressType"), IMMUTABLE)]
    return []


def _endpoints(obj: Obj) -> Errs:
    errs: Errs = []
    for i, subset in enumerate(_dicts(obj.get("subsets"))):
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(_dicts(subset.get(key))):
                if not is_ip(addr.get("ip")):
                    errs.append(_invalid(f"subsets[{i}].{key}[{j}].ip", addr.get("ip"), IP_ERROR))
        for j, port in enumerate(_dicts(subset.get("ports"))):
            p = f"subsets[{i}].ports[{j}]"
            errs += _port_num(f"{p}.port", port.get("port", 0))
            if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
                errs.append(_not_supported(f"{p}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"]))
    return errs


# ============================================================ config/secret


def _data_keys(obj: Obj, what: str) -> Errs:
    errs: Errs = []
    total = 0
    data, binary = _as_dict(obj.get("data")), _as_dict(obj.get("binaryData"))
    for section, values in (("data", data), ("binaryData", binary)):
        for key, value in values.items():
            total += len(str(value))
            errs += _each(f"{section}[{key}]", key, is_config_key(str(key)))
            if section == "binaryData" and key in data:
                errs.append(_invalid(f"{section}[{key}]", key, "duplicate of key present in data"))
    if what == "ConfigMap":
        for key in data:
            if key in binary:
                errs.append(_invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    if total > MAX_SECRET_SIZE:
        errs.append(FieldError(TOO_LONG, "data" if what == "Secret" else "",
                               detail=f"may not be more than {MAX_SECRET_SIZE} bytes"))
    return errs


def _configmap(obj: Obj) -> Errs:
    return _data_keys(obj, "ConfigMap")


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _secret(obj: Obj) -> Errs:
    errs = _data_keys(obj, "Secret")
    data = dict(_as_dict(obj.get("data")))
    data.update(_as_dict(obj.get("stringData")))
    stype = obj.get("type")
    for key in _SECRET_REQUIRED_KEYS.get(str(stype), ()):
        if key not in data:
            errs.append(_required(f"data[{key}]"))
    if stype == "kubernetes.io/service-account-token":
        annotations = _as_dict(_as_dict(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(_required("metadata.annotations[kubernetes.io/service-account.name]"))
    if stype == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        errs.append(_required("data[username]"))
        errs.append(_required("data[password]"))
    return errs


def _immutable_data(new: Obj, old: Obj) -> Errs:
    errs: Errs = []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(_forbidden("immutable", "field is immutable when `immutable` is set"))
        for key in ("data", "binaryData"):
            if (new.get(key) or {}) != (old.get(key) or {}):
                errs.append(_forbidden(key, "field is immutable when `immutable` is set"))
    return errs


def _secret_update(new: Obj, old: Obj) -> Errs:
    errs: Errs = []
    if new.get("type") != old.get("type"):
        errs.append(_invalid("type", new.get("type"), IMMUTABLE))
    return errs + _immutable_data(new, old)


# ================================================================== storage

_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def _access_modes(modes: Any, path: str) -> Errs:
    errs: Errs = []
    if not modes:
        errs.append(_required(path, "at least 1 access mode is required"))
    for mode in modes or []:
        if mode not in _ACCESS_MODES:
            errs.append(_not_supported(path, mode, _ACCESS_MODES))
    if "ReadWriteOncePod" in (modes or []) and len(modes) > 1:
        errs.append(_forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _pvc_spec(spec: Obj, path: str) -> Errs:
    errs = _access_modes(spec.get("accessModes"), f"{path}.accessModes")
    requests = _as_dict(_as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        errs.append(_required(f"{path}.resources[storage]"))
    else:
        q = parse_quantity(requests["storage"])
        if q is None or q <= 0:
            errs.append(_invalid(f"{path}.resources[storage]", str(requests["storage"]), "must be greater than zero"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        errs.append(_not_supported(f"{path}.volumeMode", mode, ["Block", "Filesystem"]))
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec["selector"], f"{path}.selector")
    sc = spec.get("storageClassName")
    if sc:
        errs += _each(f"{path}.storageClassName", sc, is_dns1123_subdomain(str(sc)))
    return errs


def _pvc(obj: Obj) -> Errs:
    return _pvc_spec(_as_dict(obj.get("spec")), "spec")


def _pvc_update(new: Obj, old: Obj) -> Errs:
    """Spec is fixed except storage requests of a bound claim (growth only) and a first volumeName."""
    nspec, ospec = dict(_as_dict(new.get("spec"))), dict(_as_dict(old.get("spec")))
    if not ospec.get("volumeName"):
        ospec["volumeName"] = nspec.get("volumeName")
        if ospec["volumeName"] is None:
            ospec.pop("volumeName")
    bound = _as_dict(old.get("status")).get("phase") == "Bound"
    errs: Errs = []
    if bound:
        nreq = _as_dict(_as_dict(nspec.get("resources")).get("requests")).get("storage")
        oreq = _as_dict(_as_dict(ospec.get("resources")).get("requests")).get("storage")
        nq, oq = parse_quantity(nreq), parse_quantity(oreq)
        # RecoverVolumeExpansionFailure (beta, on in 1.32): a request may come back down, but not to the capacity.
        cap = parse_quantity(_as_dict(_as_dict(old.get("status")).get("capacity")).get("storage"))
        if nq is not None and oq is not None and nq < oq and cap is not None and nq <= cap:
            errs.append(_forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
        nspec = {**nspec, "resources": _with_storage(nspec.get("resources"), oreq)}
    if nspec != ospec:
        errs.append(_forbidden("spec", PVC_UPDATE_MSG + "\n" + _spec_diff("core.PersistentVolumeClaimSpec", ospec, nspec)))
    return errs


def _with_storage(resources: Any, storage: Any) -> Obj:
    res: Obj = json.loads(json.dumps(_as_dict(resources)))
    requests = res.setdefault("requests", {})
    if storage is None:
        requests.pop("storage", None)
    else:
        requests["storage"] = storage
    return res


_PV_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "cephfs", "rbd", "awsElasticBlockStore",
               "gcePersistentDisk", "azureDisk", "azureFile", "glusterfs", "flexVolume", "cinder")


def _pv(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes")
    capacity = _as_dict(spec.get("capacity"))
    if not capacity:
        errs.append(_required("spec.capacity"))
    elif "storage" not in capacity or len(capacity) > 1:
        errs.append(_not_supported("spec.capacity", capacity, ["storage"]))
    else:
        q = parse_quantity(capacity["storage"])
        if q is None or q <= 0:
            errs.append(_invalid("spec.capacity[storage]", str(capacity["storage"]), "must be greater than zero"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in ("Delete", "Recycle", "Retain"):
        errs.append(_not_supported("spec.persistentVolumeReclaimPolicy", policy, ["Delete", "Recycle", "Retain"]))
    sources = [s for s in _PV_SOURCES if s in spec]
    if not sources:
        errs.append(_required("spec", "must specify a volume type"))
    for extra in sources[1:]:
        errs.append(_forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
    if "hostPath" in spec and not _as_dict(spec["hostPath"]).get("path"):
        errs.append(_required("spec.hostPath.path"))
    if "local" in spec:
        if not _as_dict(spec["local"]).get("path"):
            errs.append(_required("spec.local.path"))
        if not spec.get("nodeAffinity"):
            errs.append(_required("spec.nodeAffinity", "Local volume requires node affinity"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        errs.append(_not_supported("spec.volumeMode", mode, ["Block", "Filesystem"]))
    sc = spec.get("storageClassName")
    if sc:
        errs += _each("spec.storageClassName", sc, is_dns1123_subdomain(str(sc)))
    return errs


def _pv_update(new: Obj, old: Obj) -> Errs:
    nspec, ospec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
    errs: Errs = []
    for key in _PV_SOURCES:
        if key in ospec and nspec.get(key) != ospec.get(key):
            errs.append(_forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation"))
            break
    if ospec.get("volumeMode") != nspec.get("volumeMode"):
        errs.append(_invalid("spec.volumeMode", nspec.get("volumeMode"), IMMUTABLE))
    if ospec.get("nodeAffinity") and nspec.get("nodeAffinity") != ospec.get("nodeAffinity"):
        errs.append(_invalid("spec.nodeAffinity", json.dumps(nspec.get("nodeAffinity")), IMMUTABLE))
    return errs


def _storageclass(obj: Obj) -> Errs:
    errs: Errs = []
    prov = obj.get("provisioner") or ""
    if not prov:
        errs.append(_required("provisioner"))
    else:
        errs += _each("provisioner", prov, is_qualified_name(str(prov).lower()))
    if obj.get("reclaimPolicy") not in ("Delete", "Retain"):
        errs.append(_not_supported("reclaimPolicy", obj.get("reclaimPolicy"), ["Delete", "Retain"]))
    if obj.get("volumeBindingMode") not in ("Immediate", "WaitForFirstConsumer"):
        errs.append(_not_supported("volumeBindingMode", obj.get("volumeBindingMode"), ["Immediate", "WaitForFirstConsumer"]))
    return errs


def _storageclass_update(new: Obj, old: Obj) -> Errs:
    errs: Errs = []
    if (new.get("parameters") or {}) != (old.get("parameters") or {}):
        errs.append(_forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        errs.append(_forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(_forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(_invalid("volumeBindingMode", new.get("volumeBindingMode"), IMMUTABLE))
    return errs


# ==================================================================== other


def _namespace(obj: Obj) -> Errs:
    errs: Errs = []
    for fin in _as_dict(obj.get("spec")).get("finalizers") or []:
        errs += _each("spec.finalizers", fin, is_qualified_name(str(fin)))
    return errs


def _node(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs: Errs = []
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    for i, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (ValueError, TypeError):
            errs.append(_invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if spec.get("podCIDR") and spec.get("podCIDRs") and spec["podCIDRs"][0] != spec["podCIDR"]:
        errs.append(_invalid("spec.podCIDRs", spec["podCIDRs"], "must match `spec.podCIDR`"))
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(_dicts(spec.get("taints"))):
        # Upstream roots taint paths at `metadata` (sic), and so do we.
        p = f"metadata.taints[{i}]"
        key = str(taint.get("key") or "")
        errs += _each(f"{p}.key", key, is_qualified_name(key))
        value_errs = is_label_value(str(taint.get("value") or ""))
        if value_errs:
            errs.append(_invalid(f"{p}.value", taint.get("value"), ";".join(value_errs)))
        effect = taint.get("effect") or ""
        if not effect:
            errs.append(_required(f"{p}.effect"))
        elif effect not in _TAINT_EFFECTS:
            errs.append(_not_supported(f"{p}.effect", effect, _TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(FieldError(DUPLICATE, p, detail="taints must be unique by key and effect pair"))
        seen.add((key, effect))
    return errs


def _node_update(new: Obj, old: Obj) -> Errs:
    nspec, ospec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
    errs: Errs = []
    if ospec.get("podCIDRs") and nspec.get("podCIDRs") != ospec.get("podCIDRs"):
        errs.append(_forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
    if ospec.get("providerID") and nspec.get("providerID") != ospec.get("providerID"):
        errs.append(_forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
    return errs


def _lease(obj: Obj) -> Errs:
    spec = _as_dict(obj.get("spec"))
    errs: Errs = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errs.append(_invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errs += _non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    return errs


def _event(obj: Obj) -> Errs:
    errs: Errs = []
    ns = _as_dict(obj.get("metadata")).get("namespace", "")
    involved = _as_dict(obj.get("involvedObject"))
    ins = involved.get("namespace", "") or ""
    if not ins:
        if ns not in ("", "default"):
            errs.append(_invalid("involvedObject.namespace", ins, "does not match event.namespace"))
    elif ns != ins:
        errs.append(_invalid("involvedObject.namespace", ins, "does not match event.namespace"))
    etype = obj.get("type")
    if etype and etype not in ("Normal", "Warning"):
        errs.append(_not_supported("type", etype, ["Normal", "Warning"]))
    return errs


# ===================================================================== rbac
# pkg/apis/rbac/validation

_RBAC_GROUP = "rbac.authorization.k8s.io"


def _go_strings(values: Any) -> str:
    """Go's %#v of a []string."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values or []) + "}"


def _policy_rule(rule: Obj, namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    if not rule.get("verbs"):
        errs.append(_required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errs.append(_raw(INVALID, f"{path}.nonResourceURLs", _go_strings(urls),
                             "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(_raw(INVALID, f"{path}.nonResourceURLs", _go_strings(urls),
                             "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(_required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(_required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


def _role(obj: Obj) -> Errs:
    return [e for i, r in enumerate(_dicts(obj.get("rules"))) for e in _policy_rule(r, True, f"rules[{i}]")]


def _cluster_role(obj: Obj) -> Errs:
    errs = [e for i, r in enumerate(_dicts(obj.get("rules"))) for e in _policy_rule(r, False, f"rules[{i}]")]
    agg = obj.get("aggregationRule")
    if isinstance(agg, dict):
        selectors = agg.get("clusterRoleSelectors") or []
        if not selectors:
            errs.append(_required("aggregationRule.clusterRoleSelectors",
                                  "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, sel in enumerate(_dicts(selectors)):
            errs += validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def _subject(subject: Obj, namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        errs.append(_required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += _each(f"{path}.name", name, is_dns1123_subdomain(str(name)))
        if group:
            errs.append(_not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(_required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != _RBAC_GROUP:
            errs.append(_not_supported(f"{path}.apiGroup", group, [_RBAC_GROUP]))
    else:
        errs.append(_not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _binding(obj: Obj, namespaced: bool) -> Errs:
    errs: Errs = []
    ref = _as_dict(obj.get("roleRef"))
    if ref.get("apiGroup", "") != _RBAC_GROUP:
        errs.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [_RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind", "") not in kinds:
        errs.append(_not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        errs.append(_required("roleRef.name"))
    else:
        errs += _each("roleRef.name", ref["name"], is_path_segment_name(str(ref["name"])))
    for i, subject in enumerate(_dicts(obj.get("subjects"))):
        errs += _subject(subject, namespaced, f"subjects[{i}]")
    return errs


def _role_ref_fixed(new: Obj, old: Obj) -> Errs:
    ref = _as_dict(new.get("roleRef"))
    if ref == _as_dict(old.get("roleRef")):
        return []
    rendered = (f'rbac.RoleRef{{APIGroup:{json.dumps(ref.get("apiGroup", ""))}, Kind:{json.dumps(ref.get("kind", ""))}, '
                f'Name:{json.dumps(ref.get("name", ""))}}}')
    return [_raw(INVALID, "roleRef", rendered, "cannot change roleRef")]


# ================================================================= entries

Check = Callable[[Obj], Errs]
UpdateCheck = Callable[[Obj, Obj], Errs]

def _crd(obj: Obj) -> Errs:
    from .crdvalidation import validate_crd  # it builds on this module's checks
    return validate_crd(obj)


def _crd_update(new: Obj, old: Obj) -> Errs:
    from .crdvalidation import update_errors
    return update_errors(new, old)


_CREATE: dict[str, Check] = {
    "CustomResourceDefinition": _crd,
    "Pod": _pod,
    "Service": _service,
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicationController": replication.validate_replication_controller,
    "ControllerRevision": replication.validate_controller_revision,
    "PodDisruptionBudget": pdb.validate_spec,
    "ConfigMap": _configmap,
    "Secret": _secret,
    "PersistentVolumeClaim": _pvc,
    "PersistentVolume": _pv,
    "StorageClass": _storageclass,
    "EndpointSlice": _endpointslice,
    "Endpoints": _endpoints,
    "Namespace": _namespace,
    "Node": _node,
    "Lease": _lease,
    "Event": _event,
    "Role": _role,
    "ClusterRole": _cluster_role,
    "RoleBinding": lambda o: _binding(o, True),
    "ClusterRoleBinding": lambda o: _binding(o, False),
    # Looked up when called: batchvalidation uses the helpers of this module.
    "Job": lambda o: batchvalidation.validate_job(o),
    "CronJob": lambda o: batchvalidation.validate_cronjob(o),
    "NetworkPolicy": networkpolicy.validate,
    "HorizontalPodAutoscaler": hpa.validate,
    "Ingress": ingress.validate,
    "IngressClass": ingress.validate_class,
}

_UPDATE: dict[str, UpdateCheck] = {
    "CustomResourceDefinition": _crd_update,
    "Pod": _pod_update,
    "Service": _service_update,
    "Deployment": _selector_immutable,
    "ReplicaSet": _selector_immutable,
    "DaemonSet": _selector_immutable,
    "StatefulSet": _statefulset_update,
    "ControllerRevision": replication.validate_controller_revision_update,
    "ConfigMap": _immutable_data,
    "Secret": _secret_update,
    "PersistentVolumeClaim": _pvc_update,
    "PersistentVolume": _pv_update,
    "StorageClass": _storageclass_update,
    "EndpointSlice": _endpointslice_update,
    "Node": _node_update,
    "RoleBinding": _role_ref_fixed,
    "ClusterRoleBinding": _role_ref_fixed,
    "Job": lambda n, o: batchvalidation.validate_job_update(n, o),
    "IngressClass": ingress.validate_class_update,
}


def validate(kind: str, obj: Obj) -> list[FieldError]:
    """Create-time validation of a defaulted object; [] when it is fine."""
    errs = validate_metadata(kind, obj)
    check = _CREATE.get(kind)
    if check is not None:
        errs += check(obj)
    return errs


def validate_update(kind: str, new: Obj, old: Obj) -> list[FieldError]:
    """Update-time validation: everything `validate` checks plus what may not change.

    For Services, the new object is judged as upstream's update strategy
    would leave it (allocated values carried over, fields of the old type
    dropped); `ServiceAllocator.update` applies the same preparation for
    real, so the stored object is what was validated.
    """
    if kind == "Service":
        new = service_update_view(new, old)
    errs = validate(kind, new)
    check = _UPDATE.get(kind)
    if check is not None:
        errs += check(new, old)
    return errs
