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
