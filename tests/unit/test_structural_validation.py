"""Custom resources checked against their schema, in kube-openapi's words, and CRDs checked as apiextensions does."""

from __future__ import annotations

import copy
from typing import Any

from kinns.api.crd import names_status
from kinns.api.crdkind import deprecation_warning, extended_registry, resource_types, version_priority
from kinns.api.crdvalidation import default_crd, validate_crd, validate_crd_update
from kinns.api.crvalidation import validate_custom_resource, validate_value

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"spec": {"type": "object", "required": ["cronSpec"], "properties": {
    "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
    "color": {"type": "string", "enum": ["red", "blue"]},
    "name": {"type": "string", "minLength": 2, "maxLength": 5},
    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
    "ports": {"type": "array", "minItems": 1, "items": {"x-kubernetes-int-or-string": True}},
    "when": {"type": "string", "format": "date-time"},
    "note": {"type": "string", "nullable": True}}}}}


def errors(spec: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_value({"spec": spec}, SCHEMA)]


def test_each_violation_in_upstreams_words() -> None:
    assert errors({"cronSpec": "nope", "replicas": 11, "color": "pink", "name": "toolong", "tags": ["a", "b", "c"],
                   "ports": [], "when": "yesterday"}) == [
        "spec.cronSpec: Invalid value: \"nope\": spec.cronSpec in body should match "
        r"'^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'",
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        'spec.color: Unsupported value: "pink": supported values: "red", "blue"',
        "spec.name: Too long: may not be longer than 5",
        "spec.tags: Too many: 3: must have at most 2 items",
        "spec.ports: Invalid value: 0: spec.ports in body should have at least 1 items",
        'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
    ]


def test_types_nullable_int_or_string_and_required() -> None:
    assert errors({"replicas": "3", "ports": [80, "http", True], "note": None, "name": "a"}) == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        'spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long',
        'spec.ports[2]: Invalid value: "boolean": spec.ports[2] in body must be of type integer,string: "boolean"',
        "spec.cronSpec: Required value",
    ]
    assert errors({"cronSpec": "* * * * *", "replicas": 2.0, "when": "2024-05-01T10:00:00Z"}) == []


def test_scale_paths_metadata_and_embedded_resources() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                  "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                                                               "x-kubernetes-preserve-unknown-fields": True}}}}}
    obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "Bad_Name", "namespace": "default"},
           "spec": {"replicas": -1, "template": {"metadata": {"name": "t"}}}}
    got = [str(e) for e in validate_custom_resource(obj, schema, namespaced=True, scale={
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"})]
    assert got[0].startswith('metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    assert got[1:] == [".spec.replicas: Invalid value: -1: should be a non-negative integer",
                       "spec.template.apiVersion: Required value", "spec.template.kind: Required value"]
    cluster = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a", "namespace": "default"}}
    assert [str(e) for e in validate_custom_resource(cluster, schema, namespaced=False)] == [
        "metadata.namespace: Forbidden: not allowed on this type"]


def crd(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)}}]}}
    base["spec"].update(spec)
    default_crd(base)
    base["status"] = {"storedVersions": ["v1"]}
    return base


def test_a_good_crd_defaults_and_validates() -> None:
    c = crd()
    assert c["spec"]["names"]["singular"] == "crontab" and c["spec"]["names"]["listKind"] == "CronTabList"
    assert c["spec"]["conversion"] == {"strategy": "None"}
    assert validate_crd(c) == []


def test_bad_crds_get_apiextensions_messages() -> None:
    v = {"name": "v1", "served": True, "storage": True,
         "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {}}}}},
         "additionalPrinterColumns": [{"name": "X", "type": "str", "jsonPath": "spec.x"}]}
    c = crd(group="example", scope="Everywhere", versions=[v, dict(v, name="v2")])
    got = [str(e) for e in validate_crd(c)]
    assert got[:2] == ['metadata.name: Invalid value: "crontabs.stable.example.com": must be spec.names.plural+"."+spec.group',
                       'spec.group: Invalid value: "example": should be a domain with at least one dot']
    assert 'spec.scope: Unsupported value: "Everywhere": supported values: "Cluster", "Namespaced"' in got
    assert ("spec.validation.openAPIV3Schema.properties[spec].type: Required value: "
            "must not be empty for specified object fields") in got
    assert 'spec.additionalPrinterColumns[0].type: Invalid value: "str": must be one of boolean,date,integer,number,string' in got
    assert 'spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.x": must be a simple json path starting with .' in got
    storage = [m for m in got if m.startswith("spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{")]
    assert len(storage) == 1 and storage[0].endswith("must have exactly one version marked as storage version")


def test_crd_update_keeps_group_and_plural() -> None:
    old = crd()
    new = copy.deepcopy(old)
    new["spec"]["group"] = "other.example.com"
    assert 'spec.group: Invalid value: "other.example.com": field is immutable' in [
        str(e) for e in validate_crd_update(new, old)]


def test_names_conflict_in_a_group() -> None:
    first = crd()
    first["status"] = names_status(first, [first])
    assert {c["type"]: c["status"] for c in first["status"]["conditions"]} == {"NamesAccepted": "True", "Established": "True"}
    second = crd(names={"plural": "crontabs2", "singular": "crontab2", "kind": "CronTab2", "listKind": "CronTab2List",
                        "shortNames": ["ct"]})
    status = names_status(second, [first, second])
    accepted = next(c for c in status["conditions"] if c["type"] == "NamesAccepted")
    assert (accepted["status"], accepted["reason"], accepted["message"]) == ("False", "ShortNamesConflict",
                                                                             '"ct" is already in use')
    assert "shortNames" not in status["acceptedNames"] and status["acceptedNames"]["plural"] == "crontabs2"


def test_served_versions_are_ordered_and_custom_groups_come_last() -> None:
    assert sorted(["v1alpha1", "v1", "v2beta1", "v2", "foo"], key=version_priority) == [
        "v2", "v1", "v2beta1", "v1alpha1", "foo"]
    c = crd(versions=[{"name": "v1beta1", "served": True, "storage": False, "schema": {"openAPIV3Schema": SCHEMA}},
                      {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": SCHEMA}},
                      {"name": "v1alpha1", "served": False, "storage": False, "schema": {"openAPIV3Schema": SCHEMA}}])
    c["status"] = names_status(c, [c])
    assert [rt.version for rt in resource_types(c)] == ["v1", "v1beta1"]
    reg = extended_registry([c])
    assert reg.groups()[-1] == "stable.example.com" and reg.versions("stable.example.com") == ["v1", "v1beta1"]


def test_deprecated_versions_warn() -> None:
    c = crd(versions=[{"name": "v1beta1", "served": True, "storage": False, "deprecated": True},
                      {"name": "v1", "served": True, "storage": True},
                      {"name": "v1alpha1", "served": True, "storage": False, "deprecated": True,
                       "deprecationWarning": "v1alpha1 is going away"}])
    assert deprecation_warning(c, "v1beta1") == "stable.example.com/v1beta1 CronTab is deprecated; use stable.example.com/v1 CronTab"
    assert deprecation_warning(c, "v1alpha1") == "v1alpha1 is going away"
    assert deprecation_warning(c, "v1") == ""
