"""API errors in Kubernetes' own form.

Every failure the API server reports leaves as a `meta/v1 Status` object so
kubectl prints the same message it prints against a real cluster, e.g.
``The Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be
between 1 and 65535, inclusive``.  Handlers raise `ApiError`; the HTTP layer
turns it into JSON.  Field-level problems are `FieldError`s, formatted as
upstream's `field.Error` (apimachinery/pkg/util/validation/field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error with an HTTP code, a machine reason and a human message."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` object sent to the client."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


# Reasons for field errors, as upstream's field.ErrorType.
NOT_FOUND = "FieldValueNotFound"
REQUIRED = "FieldValueRequired"
DUPLICATE = "FieldValueDuplicate"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"

_TYPE_TEXT = {
    NOT_FOUND: "Not found",
    REQUIRED: "Required value",
    DUPLICATE: "Duplicate value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    TYPE_INVALID: "Invalid value",
}

_OMIT = object()


def format_value(value: Any) -> str:
    """Render a bad value the way Go's field.Error does (%q for strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"))


@dataclass
class FieldError:
    """One problem with one field, e.g. `spec.ports[0].port: Invalid value: 0: ...`."""

    type: str
    field: str
    value: Any = _OMIT
    detail: str = ""

    def body(self) -> str:
        """The message without the field path (upstream `ErrorBody`)."""
        text = _TYPE_TEXT.get(self.type, self.type)
        if self.type not in (REQUIRED, FORBIDDEN, TOO_LONG) and self.value is not _OMIT:
            text = f"{text}: {format_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.body(), "field": self.field}


def qualified_kind(kind: str, group: str) -> str:
    """`Deployment.apps` for grouped kinds, plain `Service` for the core group."""
    return f"{kind}.{group}" if group else kind


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid, as upstream's `errors.NewInvalid`."""
    qk = qualified_kind(kind, group)
    if len(errors) == 1:
        agg = str(errors[0])
    else:
        agg = "[" + ", ".join(str(e) for e in errors) + "]"
    msg = f'{qk} "{name}" is invalid: {agg}'
    return ApiError(
        422,
        "Invalid",
        msg,
        {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]},
    )


def not_found(resource: str, group: str, name: str) -> ApiError:
    qr = f"{resource}.{group}" if group else resource
    return ApiError(
        404, "NotFound", f'{qr} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    qr = f"{resource}.{group}" if group else resource
    return ApiError(
        409, "AlreadyExists", f'{qr} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    qr = f"{resource}.{group}" if group else resource
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {qr} "{name}": {why}',
        {"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf' if not content_type else f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml")


def too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    qr = f"{resource}.{group}" if group else resource
    return ApiError(403, "Forbidden", f'{qr} "{name}" is forbidden: {why}',
                    {"name": name, "group": group, "kind": resource})
