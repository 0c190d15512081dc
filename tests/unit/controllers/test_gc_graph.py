"""The garbage collector's graph: which objects need a look after which events, and what to
do with an object given its owners' states."""

from pocketkube.controllers.gc_graph import GNode, Graph, decide


def obj(uid, name=None, owners=(), deleting=False, finalizers=()):
    meta = {"uid": uid, "name": name or uid, "namespace": "ns",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": o,
                                 "uid": o, **({"blockOwnerDeletion": True} if b else {})}
                                for o, b in owners]}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def test_a_dependent_of_an_observed_owner_needs_nothing():
    g = Graph()
    assert g.observe(obj("owner")) == []
    assert g.observe(obj("dep", owners=[("owner", False)])) == []
    assert [d.uid for d in g.dependents("owner")] == ["dep"]


def test_a_dependent_of_an_unseen_owner_is_checked():
    g = Graph()
    assert g.observe(obj("dep", owners=[("ghost", False)])) == [("delete", "dep")]
    assert g.get("ghost") is not None and not g.get("ghost").observed


def test_deleting_an_owner_queues_its_dependents_and_remembers_it_is_absent():
    g = Graph()
    g.observe(obj("owner"))
    g.observe(obj("a", owners=[("owner", False)]))
    g.observe(obj("b", owners=[("owner", False)]))
    assert g.forget(obj("owner")) == [("delete", "a"), ("delete", "b")]
    assert "owner" in g.absent
    # A dependent seen later with that owner is checked at once.
    assert g.observe(obj("c", owners=[("owner", False)])) == [("delete", "c")]


def test_foreground_deletion_queues_the_owner_and_every_dependent_once():
    g = Graph()
    g.observe(obj("owner"))
    g.observe(obj("a", owners=[("owner", True)]))
    actions = g.observe(obj("owner", deleting=True, finalizers=["foregroundDeletion"]))
    assert actions == [("delete", "owner"), ("delete", "a")]
    assert [d.uid for d in g.blocking_dependents("owner")] == ["a"]
    # The last blocking dependent going away wakes the owner up.
    assert g.forget(obj("a")) == [("delete", "owner")]
    assert g.blocking_dependents("owner") == []


def test_dropping_a_blocking_reference_wakes_a_foreground_owner():
    g = Graph()
    g.observe(obj("owner"))
    g.observe(obj("a", owners=[("owner", True)]))
    g.observe(obj("owner", deleting=True, finalizers=["foregroundDeletion"]))
    # Still its dependent (so still deleted with it), but no longer blocking it.
    assert g.observe(obj("a", owners=[("owner", False)])) == [("delete", "owner"),
                                                              ("delete", "a")]
    assert g.blocking_dependents("owner") == []
    assert g.observe(obj("a")) == [("delete", "owner")]
    assert g.dependents("owner") == []


def test_orphan_finalizer_queues_orphaning():
    g = Graph()
    g.observe(obj("owner"))
    assert g.observe(obj("owner", deleting=True, finalizers=["orphan"])) == [("orphan", "owner")]


def test_plain_graceful_deletion_needs_nothing():
    g = Graph()
    g.observe(obj("owner"))
    g.observe(obj("a", owners=[("owner", True)]))
    assert g.observe(obj("owner", deleting=True)) == []


def test_virtual_owners_disappear_with_their_last_dependent():
    g = Graph()
    g.observe(obj("dep", owners=[("ghost", False)]))
    g.forget(obj("dep"))
    assert g.get("ghost") is None and g.get("dep") is None


REFS = [{"uid": "x"}, {"uid": "y"}]


def test_decide():
    leaf, parent = GNode("i"), GNode("p", dependents={"child"})
    assert decide(leaf, [], {}, False, False) == ("none", None)
    assert decide(leaf, REFS, {"x": "present", "y": "present"}, False, False) == ("none", None)
    assert decide(leaf, REFS, {"x": "present", "y": "absent"}, False, False) == ("unref", ["y"])
    assert decide(leaf, REFS, {"x": "present", "y": "deleting-dependents"}, False, False) == (
        "unref", ["y"])
    assert decide(leaf, REFS, {"x": "absent", "y": "absent"}, False, False) == (
        "delete", "Background")
    assert decide(parent, REFS, {"x": "absent", "y": "deleting-dependents"}, False, False) == (
        "delete", "Foreground")
    assert decide(leaf, REFS, {"x": "deleting-dependents", "y": "absent"}, False, False) == (
        "delete", "Background")
    assert decide(leaf, REFS, {"x": "absent", "y": "absent"}, True, False) == ("delete", "Orphan")
    assert decide(leaf, REFS, {"x": "absent", "y": "absent"}, False, True) == (
        "delete", "Foreground")
