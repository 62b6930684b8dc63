"""Request bodies in, as the API server accepts them.

kubectl sends JSON; users with curl send YAML too; PATCH bodies name their
flavour in the Content-Type.  Decoding failures become the same 400
BadRequest a real API server answers, and unknown media types 415.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from . import k8s_protobuf
from .errors import ApiError, bad_request
from .request import Request

MAX_BODY = 3 * 1024 * 1024  # upstream's default request body limit

JSON = "application/json"
YAML = "application/yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

PROTOBUF = k8s_protobuf.PROTOBUF
# What create and update accept: kubectl's typed subcommands send protobuf.
OBJECT_TYPES = (JSON, YAML, PROTOBUF)
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def media_type(req: Request) -> str:
    return req.header("content-type").split(";")[0].strip().lower()


def decode_body(req: Request, allowed: tuple[str, ...] = OBJECT_TYPES) -> Any:
    """The request body as Python data, or an ApiError in upstream's words."""
    if req.obj is not None:
        return req.obj
    if len(req.body) > MAX_BODY:
        raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
    mt = media_type(req) or JSON
    if mt not in allowed:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: {', '.join(allowed)}",
        )
    if not req.body.strip():
        raise bad_request("the body of the request was empty")
    if mt == PROTOBUF:
        try:
            return k8s_protobuf.decode(req.body)
        except ValueError as exc:
            raise bad_request(f"failed to decode protobuf body: {exc}") from None
    if mt in (YAML, APPLY_PATCH):
        try:
            return yaml.safe_load(req.body)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: {exc}") from None
    try:
        return orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
