"""Structural schemas: upstream's rules and messages, pruning, nulls and defaults."""

from __future__ import annotations

from typing import Any

from kinns.api import structural as st

OBJ = "object"


def msgs(schema: dict[str, Any]) -> list[str]:
    return [str(e) for e in st.structural_errors(schema, "spec.validation.openAPIV3Schema")]


def test_a_typed_schema_is_structural() -> None:
    schema = {"type": OBJ, "properties": {
        "spec": {"type": OBJ, "properties": {"replicas": {"type": "integer", "minimum": 1},
                                             "port": {"x-kubernetes-int-or-string": True},
                                             "extra": {"type": OBJ, "x-kubernetes-preserve-unknown-fields": True},
                                             "tags": {"type": "array", "items": {"type": "string"}}},
                 "anyOf": [{"required": ["replicas"]}, {"required": ["port"]}]},
        "metadata": {"type": OBJ, "properties": {"name": {"type": "string", "maxLength": 20}}}}}
    assert msgs(schema) == []


def test_missing_types_are_named_per_level() -> None:
    schema = {"properties": {"spec": {"properties": {"list": {"type": "array", "items": {}}}}}}
    assert msgs(schema) == [
        "spec.validation.openAPIV3Schema.properties[spec].properties[list].items.type: Required value: "
        "must not be empty for specified array items",
        "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified "
        "object fields",
        "spec.validation.openAPIV3Schema.type: Required value: must not be empty at the root",
    ]


def test_junctors_may_not_describe_fields() -> None:
    schema = {"type": OBJ, "properties": {"spec": {"type": OBJ, "properties": {"a": {"type": "string"}}}},
              "oneOf": [{"properties": {"spec": {"type": OBJ, "properties": {"b": {"description": "x"}}}}}]}
    assert msgs(schema) == [
        "spec.validation.openAPIV3Schema.oneOf[0].properties[spec].properties[b].description: Forbidden: "
        "must be empty to be structural",
        "spec.validation.openAPIV3Schema.oneOf[0].properties[spec].type: Forbidden: must be empty to be structural",
        "spec.validation.openAPIV3Schema.properties[spec].properties[b]: Required value: because it is defined in "
        "spec.validation.openAPIV3Schema.oneOf[0].properties[spec].properties[b]",
    ]


def test_the_int_or_string_any_of_is_allowed_and_array_items_required() -> None:
    schema = {"type": OBJ, "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "list": {"type": "array"}}}
    assert msgs(schema) == ["spec.validation.openAPIV3Schema.properties[list].items: Required value: must be specified"]


def test_metadata_may_only_restrict_name() -> None:
    schema = {"type": OBJ, "additionalProperties": {"type": "string"},
              "properties": {"metadata": {"type": OBJ, "properties": {"labels": {"type": OBJ}}}}}
    assert msgs(schema) == [
        "spec.validation.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root",
        "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than "
        "name and generateName, but metadata is implicitly specified",
    ]


def test_prune_drops_unknown_fields_and_reports_their_paths() -> None:
    schema = {"type": OBJ, "properties": {
        "spec": {"type": OBJ, "properties": {"items": {"type": "array", "items": {
            "type": OBJ, "properties": {"name": {"type": "string"}}}},
            "free": {"type": OBJ, "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"typed": {"type": OBJ, "properties": {}}}},
            "labels": {"type": OBJ, "additionalProperties": {"type": "string"}}}}}}
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "junk": 1,
           "spec": {"items": [{"name": "a", "bad": 1}], "free": {"anything": 1, "typed": {"gone": 2}},
                    "labels": {"k": "v"}, "nope": True}}
    assert st.prune(obj, schema) == ["junk", "spec.free.typed.gone", "spec.items[0].bad", "spec.nope"]
    assert obj == {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
                   "spec": {"items": [{"name": "a"}], "free": {"anything": 1, "typed": {}}, "labels": {"k": "v"}}}


def test_nulls_pruned_then_defaults_filled() -> None:
    schema = {"type": OBJ, "properties": {"spec": {"type": OBJ, "properties": {
        "replicas": {"type": "integer", "default": 1},
        "image": {"type": "string"},
        "note": {"type": "string", "nullable": True},
        "tier": {"type": OBJ, "default": {}, "properties": {"name": {"type": "string", "default": "gold"}}}}}}}
    obj: dict[str, Any] = {"spec": {"replicas": None, "image": None, "note": None}}
    st.prune_nulls(obj, schema)
    assert obj == {"spec": {"replicas": None, "note": None}}
    st.apply_defaults(obj, schema)
    assert obj == {"spec": {"replicas": 1, "note": None, "tier": {"name": "gold"}}}


def test_unfold_spells_out_int_or_string() -> None:
    out = st.unfold({"type": OBJ, "properties": {"port": {"x-kubernetes-int-or-string": True}}})
    assert out["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
