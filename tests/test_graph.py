"""The server-side SVG graph: every leaf drawn once, states as classes, text escaped."""

import re
from xml.etree import ElementTree

from task_admin import canvas
from task_admin.graph import render_svg

SUMA = "tests.testapp.tasks.suma"


def nested():
    return canvas.Chord(
        header=(
            canvas.Chain(tasks=(canvas.Task(SUMA, (1, 1)), canvas.Task(SUMA, (5,)))),
            canvas.Group(tasks=(canvas.Task(SUMA, (2, 2)), canvas.Task(SUMA, (3, 3)))),
        ),
        body=canvas.Task("tests.testapp.tasks.sum_list", label="<b>total</b>"),
    )


def test_every_leaf_is_drawn_once_with_its_state():
    svg = render_svg(nested(), states={"root.header.0.0": "SUCCESS", "root.body": "FAILURE"})
    ElementTree.fromstring(svg)  # well-formed
    paths = re.findall(r'data-path="([^"]+)"', svg)
    assert paths == [p for p, _ in canvas.leaves(nested())]
    assert 'class="ta-node ta-state-success" data-path="root.header.0.0"' in svg
    assert 'class="ta-node ta-state-failure" data-path="root.body"' in svg
    # The chord's two header members each point at the body; the chain has one arrow.
    assert svg.count('class="ta-edge"') == 3


def test_labels_are_escaped_and_links_added():
    svg = render_svg(nested(), links={"root.body": "/admin/x/?a=1&b=2"})
    assert "<b>total</b>" not in svg
    assert "&lt;b&gt;total&lt;/b&gt;" in svg
    assert 'href="/admin/x/?a=1&amp;b=2"' in svg


def test_an_empty_container_is_still_wide_enough_for_its_caption():
    svg = render_svg(canvas.Chain(tasks=()))
    frame = r'class="ta-frame ta-frame-chain" x="[\d.]+" y="[\d.]+" width="([\d.]+)"'
    width = float(re.search(frame, svg).group(1))
    assert width >= 140


def test_a_long_label_is_cut_to_its_box_and_whole_on_hover():
    from task_admin.graph import LEAF_W, _text_width

    label = "exchange rate from the flaky rate service, retried until it answers"
    svg = str(render_svg(canvas.Task("tests.testapp.tasks.fetch_exchange_rate", label=label),
                         states=None))
    shown = re.search(r'class="ta-label">([^<]*)</text>', svg).group(1)
    assert shown.endswith("…") and len(shown) < 26  # 26 bold characters ran out of the box
    assert _text_width(shown, 12, bold=True) <= LEAF_W - 20
    assert f"<title>{label}\n" in svg
