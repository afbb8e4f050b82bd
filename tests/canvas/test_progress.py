from task_admin.canvas import Chain, Chord, Group, Task
from task_admin.canvas.progress import blocked_leaves


def t(n):
    return Task("suma", (n, n))


def test_a_chain_stops_at_its_first_failure():
    spec = Chain(tasks=(t(1), t(2), Group(tasks=(t(3), t(4))), t(5)))
    assert blocked_leaves(spec, {"root.1"}) == {"root.2.0", "root.2.1", "root.3"}
    assert blocked_leaves(spec, {"root.3"}) == set()


def test_a_failed_group_member_blocks_what_follows_the_group_but_not_its_siblings():
    spec = Chain(tasks=(Group(tasks=(t(1), t(2))), t(3)))
    assert blocked_leaves(spec, {"root.0.0"}) == {"root.1"}


def test_a_chord_body_is_blocked_by_any_header_failure():
    spec = Chord(header=(t(1), Chain(tasks=(t(2), t(3)))), body=Chain(tasks=(t(4), t(5))))
    assert blocked_leaves(spec, {"root.header.1.0"}) == {
        "root.header.1.1",
        "root.body.0",
        "root.body.1",
    }
    assert blocked_leaves(spec, {"root.body.0"}) == {"root.body.1"}


def test_independent_groups_block_nothing():
    spec = Group(tasks=(t(1), Chain(tasks=(t(2), t(3)))))
    assert blocked_leaves(spec, {"root.0"}) == set()
    assert blocked_leaves(spec, {"root.1.0"}) == {"root.1.1"}


# -- how a finished canvas ended: "failed when its final result could not be produced" ------

from task_admin.canvas.progress import FAILED, PARTIAL, REVOKED, SUCCEEDED, outcome  # noqa: E402


def test_a_chord_whose_body_failed_failed():
    spec = Chord(header=(Task("a"), Task("b")), body=Task("c"))
    states = {"root.header.0": "SUCCESS", "root.header.1": "SUCCESS", "root.body": "FAILURE"}
    assert outcome(spec, states) == FAILED


def test_a_chain_that_stopped_failed_and_a_group_partly_failed():
    chain = Chain(tasks=(Task("a"), Task("b"), Task("c")))
    assert outcome(chain, {"root.0": "SUCCESS", "root.1": "FAILURE", "root.2": "SKIPPED"}) \
        == FAILED
    group = Group(tasks=(Task("a"), Chain(tasks=(Task("b"), Task("c")))))
    assert outcome(group, {"root.0": "SUCCESS", "root.1.0": "FAILURE", "root.1.1": "SKIPPED"}) \
        == PARTIAL
    assert outcome(group, {"root.0": "SUCCESS", "root.1.0": "SUCCESS", "root.1.1": "SUCCESS"}) \
        == SUCCEEDED
    assert outcome(group, {"root.0": "REVOKED", "root.1.0": "REVOKED", "root.1.1": "REVOKED"}) \
        == REVOKED


def test_a_chain_ending_in_a_partly_failed_group_is_partial():
    spec = Chain(tasks=(Task("a"), Group(tasks=(Task("b"), Task("c")))))
    states = {"root.0": "SUCCESS", "root.1.0": "SUCCESS", "root.1.1": "FAILURE"}
    assert outcome(spec, states) == PARTIAL
