"""kube-controller-manager's --controllers semantics and Go-style flag values, as upstream parses them."""

from __future__ import annotations

import argparse

import pytest

from kinns.controllers.app import duration, go_bool
from kinns.controllers.manager import CONTROLLERS, is_enabled, validate_controllers


def test_star_enables_the_defaults_but_not_the_disabled_by_default_ones() -> None:
    sel = validate_controllers(["*"])
    assert all(is_enabled(s.name, sel) for s in CONTROLLERS)
    assert not is_enabled("bootstrap-signer-controller", sel)
    # kubeadm's value: the two off-by-default ones named explicitly, by their old aliases.
    sel = validate_controllers(["*", "bootstrapsigner", "tokencleaner"])
    assert is_enabled("bootstrap-signer-controller", sel) and is_enabled("token-cleaner-controller", sel)


def test_names_aliases_and_negation() -> None:
    sel = validate_controllers(["*", "-garbagecollector", "-endpointslice"])
    assert not is_enabled("garbage-collector-controller", sel)
    # kinns's endpoints controller also does endpointslice's work: disabling either name disables it
    assert sel[-1] == "-endpoints-controller" and not is_enabled("endpoints-controller", sel)
    assert is_enabled("deployment-controller", sel)
    only = validate_controllers(["root-ca-cert-publisher"])
    assert [s.name for s in CONTROLLERS if is_enabled(s.name, only)] == ["root-ca-certificate-publisher-controller"]
    assert not any(is_enabled(s.name, []) for s in CONTROLLERS)


def test_unknown_controller_is_an_error() -> None:
    with pytest.raises(ValueError, match='"nosuch" is not in the list of known controllers'):
        validate_controllers(["*", "-nosuch"])


def test_go_durations_and_bools() -> None:
    assert duration("15s") == 15 and duration("1m30s") == 90 and duration("500ms") == 0.5
    for bad in ("15", "s", "15 s", "1x"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
    assert go_bool("true") and go_bool("T") and not go_bool("false") and not go_bool("0")
    with pytest.raises(argparse.ArgumentTypeError):
        go_bool("yes")
