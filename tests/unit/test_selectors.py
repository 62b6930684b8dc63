"""Label and field selectors: kubectl's -l and --field-selector languages."""

from __future__ import annotations

from typing import Any

import pytest

from kinns.api.errors import ApiError
from kinns.api.selectors import FieldSelector, LabelSelector, check_field_selector

# ------------------------------------------------------------------ labels

WEB = {"app": "web", "tier": "front", "release": "3"}
DB = {"app": "db", "tier": "back"}
BARE: dict[str, str] = {}

# selector text, labels that must match, labels that must not
LABEL_CASES: list[tuple[str, list[dict[str, str]], list[dict[str, str]]]] = [
    ("", [WEB, DB, BARE], []),
    ("app=web", [WEB], [DB, BARE]),
    ("app==web", [WEB], [DB, BARE]),
    ("app!=web", [DB, BARE], [WEB]),
    ("app in (web,db)", [WEB, DB], [BARE]),
    ("app in (web, cache)", [WEB], [DB, BARE]),
    ("app notin (web)", [DB, BARE], [WEB]),
    ("release", [WEB], [DB, BARE]),
    ("!release", [DB, BARE], [WEB]),
    ("app=web,tier=front", [WEB], [DB, BARE]),
    ("app=web,tier=back", [], [WEB, DB, BARE]),
    ("tier, !release", [DB], [WEB, BARE]),
    ("  app = web ", [WEB], [DB]),
    ("release>2", [WEB], [DB, BARE]),
    ("release<3", [], [WEB, DB]),
    ("app=", [{"app": ""}], [WEB, BARE]),
    ("example.com/role=x", [{"example.com/role": "x"}], [WEB]),
    ("app in (web,)", [WEB, {"app": ""}], [DB]),
]


@pytest.mark.parametrize("text,yes,no", LABEL_CASES, ids=[c[0] or "<empty>" for c in LABEL_CASES])
def test_label_matches(text: str, yes: list, no: list) -> None:
    sel = LabelSelector.parse(text)
    for labels in yes:
        assert sel.matches(labels), (text, labels)
    for labels in no:
        assert not sel.matches(labels), (text, labels)


def test_label_none_labels_and_empty() -> None:
    assert LabelSelector.parse("").empty()
    assert LabelSelector.parse("").matches(None)
    assert not LabelSelector.parse("a").empty()
    assert LabelSelector.parse("!a").matches(None)


@pytest.mark.parametrize("text,want", [
    ("b=2,a=1", "a=1,b=2"),
    ("x in (c, a, b)", "x in (a,b,c)"),
    ("a==1", "a==1"),
    ("a!=1,!b,c", "a!=1,!b,c"),
    ("k notin (v)", "k notin (v)"),
    ("n>5", "n>5"),
])
def test_label_str(text: str, want: str) -> None:
    assert str(LabelSelector.parse(text)) == want


LABEL_ERRORS = [
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("a in x", "expected: '('"),
    ("a in (x", "found 'end of string'"),
    ("a in (x y)", "found 'y'"),
    ("a in ()", "values set can't be empty"),
    ("=b", "found '=', expected: identifier"),
    ("a b", "found 'b'"),
    ("a=b,", "expected: identifier"),
    ("!a=b", "found '='"),
    ("a=(b", "found '(', expected: identifier"),
    ("-bad=x", "key: Invalid value"),
    ("a=-bad-", "Invalid value: \"-bad-\""),
    ("a=" + "x" * 64, "no more than 63 characters"),
    ("a>b", "must be an integer"),
    ("a ~ b", "found '~'"),
]


@pytest.mark.parametrize("text,msg", LABEL_ERRORS, ids=[c[0][:20] for c in LABEL_ERRORS])
def test_label_parse_errors(text: str, msg: str) -> None:
    with pytest.raises(ApiError) as e:
        LabelSelector.parse(text)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message.startswith("unable to parse requirement: ")
    assert msg in e.value.message


def test_from_spec() -> None:
    assert not LabelSelector.from_spec(None).matches(WEB)  # nil selects nothing
    assert not LabelSelector.from_spec(None).empty()
    assert LabelSelector.from_spec({}).matches(WEB)  # {} selects everything
    assert LabelSelector.from_spec({}).empty()
    sel = LabelSelector.from_spec({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "release", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
        ],
    })
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "canary": "1"})
    assert not sel.matches({**WEB, "zone": "b"})
    assert not sel.matches(DB)
    assert str(sel) == "app=web,!canary,release,tier in (edge,front),zone notin (b)"


@pytest.mark.parametrize("spec", [
    {"matchExpressions": [{"key": "a", "operator": "Bogus", "values": ["x"]}]},
    {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
    {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
    {"matchLabels": {"a": "not valid"}},
])
def test_from_spec_errors(spec: dict) -> None:
    with pytest.raises(ApiError) as e:
        LabelSelector.from_spec(spec)
    assert e.value.code == 400


# ------------------------------------------------------------------ fields

POD: dict[str, Any] = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}
EVENT: dict[str, Any] = {
    "kind": "Event",
    "metadata": {"name": "web-1.abc", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
    "reason": "Scheduled", "type": "Normal", "source": {"component": "default-scheduler"},
}

FIELD_CASES = [
    ("", POD, True),
    ("metadata.name=web-1", POD, True),
    ("metadata.name==web-1", POD, True),
    ("metadata.name!=web-1", POD, False),
    ("metadata.name=web-2", POD, False),
    ("metadata.namespace=default,status.phase=Running", POD, True),
    ("status.phase!=Running", POD, False),
    ("spec.nodeName=node-a", POD, True),
    ("spec.nodeName=", POD, False),
    ("spec.schedulerName=", POD, True),  # missing field compares as ""
    ("spec.nodeName!=", POD, True),
    ("spec.hostNetwork=false", POD, True),
    ("spec.hostNetwork=true", {**POD, "spec": {"hostNetwork": True}}, True),
    ("status.podIP=10.0.0.5", POD, True),
    ("involvedObject.kind=Pod,involvedObject.name=web-1", EVENT, True),
    ("involvedObject.uid=u2", EVENT, False),
    ("source=default-scheduler", EVENT, True),
    ("reason=Scheduled,type=Normal", EVENT, True),
    ("type=Warning", EVENT, False),
    ("status.replicas=0", {"status": {}}, True),
    ("status.replicas=2", {"status": {"replicas": 2}}, True),
    (r"metadata.name=a\,b", {"metadata": {"name": "a,b"}}, True),
    (r"metadata.name=a\=b\\c", {"metadata": {"name": "a=b\\c"}}, True),
    ("metadata.name=web-1,", POD, True),
]


@pytest.mark.parametrize("text,obj,want", FIELD_CASES, ids=[c[0] or "<empty>" for c in FIELD_CASES])
def test_field_matches(text: str, obj: dict, want: bool) -> None:
    assert FieldSelector.parse(text).matches(obj) is want


def test_field_requirements_exact_and_str() -> None:
    sel = FieldSelector.parse(r"metadata.name==a\,b,status.phase!=Running")
    assert sel.requirements() == [("metadata.name", "=", "a,b"), ("status.phase", "!=", "Running")]
    assert sel.exact("metadata.name") == "a,b"
    assert sel.exact("status.phase") is None
    assert sel.exact("spec.nodeName") is None
    assert str(sel) == r"metadata.name=a\,b,status.phase!=Running"
    assert FieldSelector.parse("metadata.name=").exact("metadata.name") == ""


@pytest.mark.parametrize("text,msg", [
    ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
    ("a=b,bar", "can't understand 'bar'"),
    (r"a=b\x", "invalid escape sequence"),
    ("a=b=c", "unescaped character '='"),
])
def test_field_parse_errors(text: str, msg: str) -> None:
    with pytest.raises(ApiError) as e:
        FieldSelector.parse(text)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert msg in e.value.message


@pytest.mark.parametrize("kind,field,ok", [
    ("ConfigMap", "metadata.name", True),
    ("ConfigMap", "metadata.namespace", True),
    ("ConfigMap", "data.x", False),
    ("Deployment", "spec.replicas", False),
    ("Pod", "spec.nodeName", True),
    ("Pod", "status.phase", True),
    ("Pod", "spec.hostNetwork", True),
    ("Pod", "spec.containers", False),
    ("Event", "involvedObject.name", True),
    ("Event", "source", True),
    ("Event", "reportingComponent", True),
    ("Secret", "type", True),
    ("ConfigMap", "type", False),
    ("Node", "spec.unschedulable", True),
    ("Namespace", "status.phase", True),
    ("ReplicaSet", "status.replicas", True),
    ("Service", "spec.clusterIP", False),
])
def test_check_field_selector(kind: str, field: str, ok: bool) -> None:
    sel = FieldSelector.parse(f"{field}=x")
    if ok:
        check_field_selector(kind, sel)
    else:
        with pytest.raises(ApiError) as e:
            check_field_selector(kind, sel)
        assert e.value.code == 400
        assert e.value.message == f"field label not supported: {field}"
