"""read_bundle walks a prefetched Bundle once: the resources bundle_resources gives, and a gap
exactly when the Bundle is not the whole answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from service.clinical.resources import (
    as_dict,
    as_list,
    bundle_resources,
    next_link,
    prefetch_gap,
    read_bundle,
    why_incomplete,
)
from service.protocol import prefetch
from tests import fhir_builders as fb
from tests.fuzz import strategies as fuzz
from tests.unit.property_settings import PROPERTY


def _plain_gap(value: Any) -> bool:
    """The rule spelled out: the value is a Bundle, and an entry is not a resource or reports an
    error, or a Bundle inside has pages left or falls short of its total, or the Bundle itself is a
    last page short of its total."""
    value = as_dict(value)
    if value.get("resourceType") != "Bundle":
        return False
    return not _entries_whole(value) or (not next_link(value) and _short(value))


def _entries_whole(bundle: dict[str, Any]) -> bool:
    for entry in as_list(bundle.get("entry")):
        resource = as_dict(as_dict(entry).get("resource"))
        if why_incomplete(resource):
            return False
        if resource["resourceType"] == "Bundle" and (
            not _entries_whole(resource) or next_link(resource) or _short(resource)
        ):
            return False
    return True


def _short(bundle: dict[str, Any]) -> bool:
    """Bundle.total (an integer) above the entries it counts: not _include's, not outcomes."""
    total = bundle.get("total")
    matches = 0
    for entry in as_list(bundle.get("entry")):
        resource = as_dict(as_dict(entry).get("resource"))
        mode = as_dict(as_dict(entry).get("search")).get("mode")
        kind = resource.get("resourceType")
        matches += kind not in ("Bundle", "OperationOutcome") and mode not in ("include", "outcome")
    return type(total) is int and total > matches


@settings(PROPERTY)
@given(fuzz.bundles())
def test_one_walk_gives_the_resources_and_the_gap(value: Any) -> None:
    read = read_bundle(value)
    assert (prefetch_gap(value, read) is not None) == _plain_gap(value)
    assert prefetch_gap(value, read) == prefetch_gap(value)
    if read.gap is None:
        assert read.resources == list(bundle_resources(value))


def test_the_fixture_prefetch_is_whole_and_read_as_it_was() -> None:
    for value in fb.prefetch_for(fb.metastatic_history()).values():
        read = read_bundle(value)
        assert read.gap is None and prefetch.usable(value, read)
        assert read.resources == list(bundle_resources(value))


def test_nested_searchsets_are_read_and_judged_like_the_outer_one() -> None:
    labs = fb.searchset([fb.observation("platelets", 180_000, fb.ago(days=2))])
    batch = {"resourceType": "Bundle", "type": "batch-response", "entry": [{"resource": labs}]}
    assert not _plain_gap(batch) and prefetch_gap(batch) is None
    assert read_bundle(batch).resources == list(bundle_resources(batch))
    labs["total"] = 2
    assert _plain_gap(batch) and prefetch_gap(batch) == "the server counted 2 results and sent 1"
    labs["total"] = 1
    labs["link"] = [{"relation": "next", "url": "Observation?page=2"}]
    assert (
        _plain_gap(batch) and prefetch_gap(batch) == "a Bundle within the Bundle has pages that were not read"
    )
