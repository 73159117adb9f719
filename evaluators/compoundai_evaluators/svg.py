"""Charts as inline SVG strings, drawn in plain Python: no JavaScript, no CDN, no plotting lib.

A report must open offline, years later, from an email attachment; a chart library loaded from
a CDN breaks that, and a bundled one adds megabytes. Four chart shapes cover the report:
`interval_bars` (a metric per lane with its interval), `forest` (paired differences around
zero), `scatter` (cost against quality) and `latency_bars` (p50 bar, p95 tick). Every text is
escaped; every chart carries a `<title>` for screen readers and hover text on its marks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from compoundai_evaluators.report import signed

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5")
WIDTH, LEFT, RIGHT, ROW = 900, 200, 24, 30


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None
    high: float | None = None
    color: str = PALETTE[0]
    note: str = ""


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering `[lo, hi]`.

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _open(title: str, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" class="chart">',
        f"<title>{escape(title)}</title>",
    ]


def _axis(
    ticks: Sequence[float], x: Callable[[float], float], top: int, bottom: int, fmt: str
) -> list[str]:
    out = []
    for t in ticks:
        px = x(t)
        if px < 0 or px > WIDTH:
            continue
        out.append(
            f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" class="grid"/>'
            f'<text x="{px:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">'
            f"{format(t, fmt)}</text>"
        )
    return out


def interval_bars(title: str, bars: Sequence[Bar], lo: float = 0.0, hi: float = 1.0) -> str:
    """Horizontal bars with interval whiskers, one row per lane.

    >>> svg = interval_bars("accuracy", [Bar("a", 0.5, 0.4, 0.6)])
    >>> svg.startswith("<svg") and "0.500" in svg
    True
    """
    top, height = 8, 8 + ROW * len(bars) + 28
    bottom = height - 24
    hi = max([hi, *(b.high or b.value for b in bars)])
    span = WIDTH - LEFT - RIGHT

    def x(v: float) -> float:
        return LEFT + (v - lo) / (hi - lo) * span

    out = _open(title, height) + _axis(nice_ticks(lo, hi), x, top, bottom, ".1f")
    for i, b in enumerate(bars):
        y = top + i * ROW + 6
        mid = y + 9
        out.append(
            f'<text x="{LEFT - 8}" y="{mid + 4}" class="label" text-anchor="end">'
            f"{escape(b.label)}</text>"
            f'<rect x="{LEFT}" y="{y}" width="{max(x(b.value) - LEFT, 0):.1f}" height="18" '
            f'fill="{b.color}" opacity="0.85"><title>{escape(b.label)}: {b.value:.3f}'
            f"{escape(b.note)}</title></rect>"
        )
        if b.low is not None and b.high is not None:
            x0, x1 = x(b.low), x(b.high)
            out.append(
                f'<path d="M{x0:.1f},{mid}H{x1:.1f}M{x0:.1f},{mid - 6}V{mid + 6}'
                f'M{x1:.1f},{mid - 6}V{mid + 6}" class="whisker"/>'
            )
        after = x(b.high if b.high is not None else b.value) + 6
        if after > WIDTH - 50:  # no room on the right: write the value inside the bar
            out.append(
                f'<text x="{x(b.value) - 8:.1f}" y="{mid + 4}" '
                f'text-anchor="end" class="value inside">{b.value:.3f}</text>'
            )
        else:
            out.append(f'<text x="{after:.1f}" y="{mid + 4}" class="value">{b.value:.3f}</text>')
    return "\n".join([*out, "</svg>"])


def forest(title: str, bars: Sequence[Bar], left: int = 300) -> str:
    """Paired differences with intervals around a zero line (a forest plot).

    >>> "zero" in forest("d", [Bar("a - b", 0.1, -0.05, 0.2)])
    True
    """
    top, height = 8, 8 + ROW * len(bars) + 28
    bottom = height - 24
    extent = max([0.05, *(abs(v) for b in bars for v in (b.value, b.low or 0, b.high or 0))])
    lo, hi = -extent * 1.1, extent * 1.1
    span = WIDTH - left - RIGHT

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * span

    ticks = [t for t in nice_ticks(lo, hi) if lo <= t <= hi]
    out = _open(title, height) + _axis(ticks, x, top, bottom, "+.2f")
    out.append(f'<line x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" y2="{bottom}" class="zero"/>')
    for i, b in enumerate(bars):
        mid = top + i * ROW + 15
        out.append(
            f'<text x="{left - 8}" y="{mid + 4}" class="label" text-anchor="end">'
            f"{escape(b.label)}</text>"
        )
        if b.low is not None and b.high is not None:
            out.append(
                f'<line x1="{x(b.low):.1f}" y1="{mid}" x2="{x(b.high):.1f}" y2="{mid}" '
                f'stroke="{b.color}" stroke-width="3"/>'
            )
        out.append(
            f'<circle cx="{x(b.value):.1f}" cy="{mid}" r="5" fill="{b.color}">'
            f"<title>{escape(b.label)}: {signed(b.value)}{escape(b.note)}</title></circle>"
        )
    return "\n".join([*out, "</svg>"])


def scatter(title: str, bars: Sequence[Bar], xs: Sequence[float], x_label: str) -> str:
    """Quality (y, with its interval) against cost (x), one labelled point per lane.

    >>> "<circle" in scatter("c", [Bar("a", 0.5, 0.4, 0.6)], [0.01], "$ / 1k cases")
    True
    """
    left, height, top, bottom = 56, 300, 12, 256
    x_hi = max([*xs, 1e-9]) * 1.15
    y_lo = max(0.0, min(b.low if b.low is not None else b.value for b in bars) - 0.1)
    y_hi = min(1.0, max(b.high if b.high is not None else b.value for b in bars) + 0.1)
    y_hi = max(y_hi, y_lo + 0.1)

    def x(v: float) -> float:
        return left + v / x_hi * (WIDTH - left - RIGHT - 90)

    def y(v: float) -> float:
        return bottom - (v - y_lo) / (y_hi - y_lo) * (bottom - top)

    out = _open(title, height)
    fmt = ".2g" if x_hi < 0.01 else ".3f"
    out += _axis(nice_ticks(0, x_hi, 4), x, top, bottom, fmt)
    for t in nice_ticks(y_lo, y_hi, 4):
        if y_lo <= t <= y_hi:
            out.append(
                f'<line x1="{left}" y1="{y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{y(t):.1f}" '
                f'class="grid"/><text x="{left - 6}" y="{y(t) + 4:.1f}" class="tick" '
                f'text-anchor="end">{t:.2f}</text>'
            )
    out.append(
        f'<text x="{(left + WIDTH) / 2:.0f}" y="{height - 4}" class="axis" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    for b, cost in zip(bars, xs, strict=True):
        px, py = x(cost), y(b.value)
        if b.low is not None and b.high is not None:
            out.append(
                f'<line x1="{px:.1f}" y1="{y(b.low):.1f}" x2="{px:.1f}" y2="{y(b.high):.1f}" '
                f'stroke="{b.color}" stroke-width="2"/>'
            )
        out.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{b.color}"><title>'
            f"{escape(b.label)}: {b.value:.3f} at {cost:.4g}</title></circle>"
            f'<text x="{px + 9:.1f}" y="{py + 4:.1f}" class="label">{escape(b.label)}</text>'
        )
    return "\n".join([*out, "</svg>"])


def latency_bars(
    title: str, rows: Sequence[tuple[str, float, float, str]], limit: float | None = None
) -> str:
    """`(lane, p50, p95, color)`: a p50 bar per lane, a tick at p95, the budget as a line (ms).

    >>> "p95" in latency_bars("latency", [("a", 10.0, 20.0, "#000")])
    True
    """
    bars = [Bar(label, p50, None, None, color) for label, p50, _, color in rows]
    top, height = 24, 24 + ROW * len(bars) + 28
    bottom = height - 24
    hi = max([1.0, limit or 0.0, *(p95 for _, _, p95, _ in rows)]) * 1.1
    span = WIDTH - LEFT - RIGHT - 110  # room for the "p50 / p95 ms" labels

    def x(v: float) -> float:
        return LEFT + v / hi * span

    out = _open(title, height) + _axis(nice_ticks(0, hi), x, top, bottom, ".0f")
    for i, (b, (_, p50, p95, _)) in enumerate(zip(bars, rows, strict=True)):
        y = top + i * ROW + 6
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 13}" class="label" text-anchor="end">'
            f"{escape(b.label)}</text>"
            f'<rect x="{LEFT}" y="{y}" width="{x(p50) - LEFT:.1f}" height="18" fill="{b.color}" '
            f'opacity="0.85"><title>p50 {p50:.0f} ms</title></rect>'
            f'<line x1="{x(p95):.1f}" y1="{y - 2}" x2="{x(p95):.1f}" y2="{y + 20}" '
            f'class="p95"><title>p95 {p95:.0f} ms</title></line>'
            f'<text x="{x(p95) + 6:.1f}" y="{y + 13}" class="value">'
            f"{p50:.0f} / {p95:.0f} ms</text>"
        )
    if limit:
        out.append(
            f'<line x1="{x(limit):.1f}" y1="{top}" x2="{x(limit):.1f}" y2="{bottom}" '
            f'class="zero"><title>budget {limit:g} ms</title></line>'
            f'<text x="{x(limit):.1f}" y="{top - 8}" class="tick" text-anchor="middle">'
            f"budget {limit:g} ms</text>"
        )
    return "\n".join([*out, "</svg>"])
