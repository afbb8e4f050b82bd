"""Draw a canvas spec as SVG on the server: no JavaScript library, no CDN.

Chains run left to right with arrows between their steps; groups and chord headers stack their
members; a chord's header members all point at its body. Each leaf carries its path in
``data-path`` and its state as a CSS class, so the run page can recolour it while it refreshes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from task_admin import canvas

LEAF_W, LEAF_H = 180, 46
GAP_X, GAP_Y, PAD, TITLE = 34, 12, 10, 16
FRAME_MIN_W = 140

Draw = Callable[[float, float], list[str]]


@dataclass
class Box:
    width: float
    height: float
    draw: Draw
    # Where arrows enter and leave, relative to the box's top-left corner.
    entry_y: float
    exit_y: float


# Rough glyph widths in em for the admin's sans-serif (DejaVu Sans and the like are among the
# widest): enough to cut a label before it leaves its box, which counting characters was not
# (26 bold characters ran past a 180 px box).
NARROW, WIDE = frozenset("fijlrtI.,:;'!|()[]{} "), frozenset("mwMW@%&")


def _em(ch: str, bold: bool) -> float:
    if ch in NARROW:
        return 0.34
    if ch in WIDE:
        return 0.92
    if ch.isupper() or (ch.isdigit() and bold):
        return 0.72
    return 0.62


def _text_width(text: str, size: float, bold: bool = False) -> float:
    return sum(_em(ch, bold) for ch in text) * size * (1.1 if bold else 1.0)


def _fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """``text``, cut with "…" to fit ``width`` pixels at ``size`` px (whole in the title)."""
    if _text_width(text, size, bold) <= width:
        return text
    while text and _text_width(text + "…", size, bold) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return (
        f'<path class="ta-edge" d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} '
        f'{x2:.1f},{y2:.1f}" marker-end="url(#ta-arrow)"/>'
    )


def _leaf(path: str, node: canvas.Task, states, links) -> Box:
    state = (states or {}).get(path, "")
    title = node.label or node.task
    name = node.task.rsplit(".", 1)[-1] + (".si" if node.immutable else ".s")

    def draw(x: float, y: float) -> list[str]:
        shape = [
            f'<g class="ta-node ta-state-{escape(state.lower())}" data-path="{escape(path)}">',
            # The box cuts long labels; the title (shown on hover) has them whole.
            f"<title>{escape(title)}\n{escape(node.task)}\n{escape(path)}"
            f"{' — ' + escape(state) if state else ''}</title>",
            f'<rect x="{x}" y="{y}" width="{LEAF_W}" height="{LEAF_H}" rx="6"/>',
            f'<text x="{x + 10}" y="{y + 19}" class="ta-label">'
            f"{escape(_fit(title, LEAF_W - 20, 12, bold=True))}</text>",
            f'<text x="{x + 10}" y="{y + 36}" class="ta-sub">'
            f"{escape(_fit(name, LEAF_W - 20, 11))}</text>",
            "</g>",
        ]
        link = (links or {}).get(path)
        if link:
            shape = [f'<a href="{escape(link)}">', *shape, "</a>"]
        return shape

    return Box(LEAF_W, LEAF_H, draw, LEAF_H / 2, LEAF_H / 2)


def _frame(kind: str, inner: Box, label: str) -> Box:
    # Wide enough for its caption even when empty (a draft's new container).
    width, height = max(inner.width + 2 * PAD, FRAME_MIN_W), inner.height + 2 * PAD + TITLE

    def draw(x: float, y: float) -> list[str]:
        caption = kind + (f": {label}" if label else "")
        return [
            f'<rect class="ta-frame ta-frame-{kind}" x="{x}" y="{y}" width="{width}" '
            f'height="{height}" rx="8"/>',
            f'<text class="ta-frame-title" x="{x + PAD}" y="{y + 13}">'
            f"{escape(_fit(caption, width - 2 * PAD, 11))}</text>",
            *inner.draw(x + PAD, y + PAD + TITLE),
        ]

    offset = PAD + TITLE
    return Box(width, height, draw, inner.entry_y + offset, inner.exit_y + offset)


def _stack(boxes: list[Box]) -> Box:
    width = max((b.width for b in boxes), default=0)
    height = sum(b.height for b in boxes) + GAP_Y * max(len(boxes) - 1, 0)

    def draw(x: float, y: float) -> list[str]:
        out, top = [], y
        for box in boxes:
            out += box.draw(x, top)
            top += box.height + GAP_Y
        return out

    return Box(width, height, draw, height / 2, height / 2)


def _row(boxes: list[Box]) -> Box:
    width = sum(b.width for b in boxes) + GAP_X * max(len(boxes) - 1, 0)
    height = max((b.height for b in boxes), default=0)

    def draw(x: float, y: float) -> list[str]:
        out, left, previous = [], x, None
        for box in boxes:
            top = y + (height - box.height) / 2
            if previous is not None:
                px, py = previous
                out.append(_arrow(px, py, left, top + box.entry_y))
            out += box.draw(left, top)
            previous = (left + box.width, top + box.exit_y)
            left += box.width + GAP_X
        return out

    first, last = (boxes[0], boxes[-1]) if boxes else (None, None)
    entry = (height - first.height) / 2 + first.entry_y if first else height / 2
    exit_ = (height - last.height) / 2 + last.exit_y if last else height / 2
    return Box(width, height, draw, entry, exit_)


def _fan_in(header: list[Box], body: Box) -> Box:
    stack = _stack(header)
    width = stack.width + GAP_X * 1.5 + body.width
    height = max(stack.height, body.height)

    def draw(x: float, y: float) -> list[str]:
        sy, by = y + (height - stack.height) / 2, y + (height - body.height) / 2
        bx = x + stack.width + GAP_X * 1.5
        out, top = [], sy
        for box in header:
            out.append(_arrow(x + box.width, top + box.exit_y, bx, by + body.entry_y))
            top += box.height + GAP_Y
        return out + stack.draw(x, sy) + body.draw(bx, by)

    entry = (height - stack.height) / 2 + stack.entry_y
    return Box(width, height, draw, entry, (height - body.height) / 2 + body.exit_y)


def _layout(path: str, node: canvas.Node, states, links) -> Box:
    if isinstance(node, canvas.Task):
        return _leaf(path, node, states, links)
    kids = [_layout(p, child, states, links) for p, child in canvas.spec.children(path, node)]
    if isinstance(node, canvas.Chain):
        return _frame("chain", _row(kids), node.label)
    if isinstance(node, canvas.Group):
        return _frame("group", _stack(kids), node.label)
    return _frame("chord", _fan_in(kids[:-1], kids[-1]), node.label)


def render_svg(
    spec: canvas.Node,
    states: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
) -> SafeString:
    """The workflow as an inline SVG; ``states`` and ``links`` are keyed by leaf path."""
    box = _layout("root", spec, states, links)
    width, height = box.width + 2 * PAD, box.height + 2 * PAD
    parts = [
        f'<svg class="ta-graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
        '<defs><marker id="ta-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
        *box.draw(PAD, PAD),
        "</svg>",
    ]
    return mark_safe("".join(parts))  # every piece of text above went through escape()
