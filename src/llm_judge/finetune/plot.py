"""The loss curve of a fine-tune as a small self-contained SVG (pure; no plotting library).

    >>> svg = loss_svg([(1, 2.0), (2, 1.5), (3, 1.2)])
    >>> svg.startswith("<svg") and "polyline" in svg and "step" in svg
    True
"""

from __future__ import annotations

from html import escape


def loss_svg(points: list[tuple[int, float]], title: str = "training loss", width: int = 640, height: int = 360) -> str:
    left, right, top, bottom = 60, 20, 30, 40
    w, h = width - left - right, height - top - bottom
    steps = [p[0] for p in points] or [0, 1]
    losses = [p[1] for p in points] or [0.0, 1.0]
    x0, x1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1
    y0, y1 = min(0.0, min(losses)), max(losses) * 1.05 or 1.0

    def x(s):
        return left + (s - x0) / (x1 - x0) * w

    def y(v):
        return top + h - (v - y0) / (y1 - y0) * h

    line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    ticks = []
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        ticks.append(f'<line x1="{left - 4}" y1="{y(v):.1f}" x2="{left}" y2="{y(v):.1f}" stroke="#444"/>'
                     f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.2f}</text>')
    for s in sorted({x0, (x0 + x1) // 2, x1}):
        ticks.append(f'<text x="{x(s):.1f}" y="{top + h + 16}" text-anchor="middle" font-size="11">{s}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>'
            f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#444"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#444"/>' + "".join(ticks) +
            f'<text x="{left + w / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="12">step</text>'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{line}"/></svg>\n')
