"""A small SVG writer for the local run's report charts.

Plain string building: a chart is a few hundred to two thousand shapes, which this writes in
milliseconds where a plotting library took a second to import. Output is deterministic: every
coordinate has one decimal and every number one format, so the same data gives the same bytes
(charts diff well in review and tests can compare them).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from html import escape
from typing import Iterator, Sequence

FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
# matplotlib's viridis at 0, 1/8, ..., 1: perceptually even, readable in grey and by most
# colour-blind readers; colours in between are interpolated linearly per channel.
VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
CHAR_WIDTH = 0.58  # of the font size: a sans-serif's average, to place legends and labels without a font engine


def num(v: float) -> str:
    """A coordinate: one decimal, never "-0.0" (rounding a tiny negative must not change the bytes)."""
    if not math.isfinite(v):
        raise ValueError(f"not a finite coordinate: {v}")
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def text_width(s: str, size: float) -> float:
    return len(s) * size * CHAR_WIDTH


def nice_step(span: float, count: int = 7) -> float:
    """The 1, 2 or 5 x 10^k step that cuts `span` into at most about `count` parts."""
    raw = span / max(count, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, count: int = 7) -> tuple[list[float], float]:
    """Tick values inside [lo, hi] on a nice step, and the step."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = nice_step(hi - lo, count)
    k, out = math.ceil(lo / step - 1e-9), []
    while k * step <= hi + step * 1e-9:
        out.append(round(k * step, 12))
        k += 1
    return out, step


def tick_label(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    s = f"{v:,.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s.replace(",", "")) == 0 else s


def viridis(t: Sequence[float]) -> list[str]:
    """Colours for values in [0, 1] (clipped), as #rrggbb."""
    import numpy as np

    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    stops = np.linspace(0, 1, len(VIRIDIS))
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS], dtype=float)
    chans = np.rint(np.stack([np.interp(t, stops, rgb[:, i]) for i in range(3)], axis=-1)).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in chans.tolist()]


def _attrs(**kw: object) -> str:
    # Keyword names use "_" for "-" (stroke_width -> stroke-width); None leaves an attribute out.
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        parts.append(f' {k.rstrip("_").replace("_", "-")}="{num(v) if isinstance(v, float) else escape(str(v))}"')
    return "".join(parts)


class Svg:
    """One drawing: shapes appended in order (later ones on top), rendered once by `render()`."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self._parts: list[str] = [f'<rect width="{width}" height="{height}" fill="#ffffff"/>']

    def rect(self, x: float, y: float, w: float, h: float, fill: str, *, tip: str | None = None,
             class_: str | None = None, **kw: object) -> None:
        a = _attrs(class_=class_, x=float(x), y=float(y), width=float(max(w, 0.0)), height=float(max(h, 0.0)),
                   fill=fill, **kw)
        # A <title> is the hover text where the SVG is opened itself (the report links each chart).
        self._parts.append(f"<rect{a}><title>{escape(tip)}</title></rect>" if tip else f"<rect{a}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = "#000000", width: float = 1.0,
             *, dash: str | None = None, class_: str | None = None) -> None:
        self._parts.append("<line" + _attrs(class_=class_, x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2),
                                            stroke=stroke, stroke_width=float(width), stroke_dasharray=dash) + "/>")

    def text(self, x: float, y: float, s: str, *, size: float = 11, anchor: str = "start", middle: bool = False,
             weight: str | None = None, rotate: bool = False, fill: str | None = None) -> None:
        # dy 0.35em centres the text on y (dominant-baseline is not honoured by every renderer).
        a = _attrs(x=float(x), y=float(y), dy="0.35em" if middle else None, font_size=float(size),
                   text_anchor=None if anchor == "start" else anchor, font_weight=weight, fill=fill,
                   transform=f"rotate(-90 {num(x)} {num(y)})" if rotate else None)
        self._parts.append(f"<text{a}>{escape(s)}</text>")

    @contextmanager
    def group(self, **kw: object) -> Iterator[None]:
        self._parts.append(f"<g{_attrs(**kw)}>")
        yield
        self._parts.append("</g>")

    def render(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" font-family="{escape(FONT)}" font-size="11">')
        return "\n".join([head, *self._parts, "</svg>"]) + "\n"


class Axes:
    """A plotting area inside an Svg: data coordinates to pixels, and its frame, ticks and labels."""

    def __init__(self, svg: Svg, left: float, top: float, width: float, height: float,
                 xlim: tuple[float, float], ylim: tuple[float, float]):
        self.svg, self.left, self.top, self.width, self.height = svg, left, top, width, height
        self.xlim, self.ylim = _widen(xlim), _widen(ylim)

    def x(self, v: float) -> float:
        x0, x1 = self.xlim
        return self.left + (v - x0) / (x1 - x0) * self.width

    def y(self, v: float) -> float:
        y0, y1 = self.ylim
        return self.top + self.height - (v - y0) / (y1 - y0) * self.height

    def title(self, s: str) -> None:
        self.svg.text(self.left + self.width / 2, self.top - 14, s, size=13, anchor="middle", weight="600")

    def frame(self, xlabel: str, ylabel: str, *, xticks: Sequence[tuple[float, str]] | None = None,
              yticks: Sequence[tuple[float, str]] | None = None, grid: bool = False) -> None:
        """The box, ticks (nice ones from the limits unless given as (value, label)) and axis labels."""
        svg, bottom, right = self.svg, self.top + self.height, self.left + self.width
        xticks = _nice(self.xlim) if xticks is None else xticks
        yticks = _nice(self.ylim) if yticks is None else yticks
        for v, label in xticks:
            px = self.x(v)
            if grid:
                svg.line(px, self.top, px, bottom, "#e6e6e6")
            svg.line(px, bottom, px, bottom + 4, "#333333")
            svg.text(px, bottom + 15, label, size=10, anchor="middle")
        for v, label in yticks:
            py = self.y(v)
            svg.line(self.left - 4, py, self.left, py, "#333333")
            svg.text(self.left - 7, py, label, size=10, anchor="end", middle=True)
        svg.rect(self.left, self.top, self.width, self.height, "none", stroke="#333333", stroke_width=1.0)
        svg.text(self.left + self.width / 2, bottom + 34, xlabel, anchor="middle")
        if ylabel:
            svg.text(self.left - 46, self.top + self.height / 2, ylabel, anchor="middle", rotate=True)

    def legend(self, entries: Sequence[tuple[str, str, str]], where: str = "upper left") -> None:
        """Entries (label, colour, kind: "line", "dash" or "box") in a white box at a corner."""
        size, row = 10, 16
        width = max(text_width(label, size) for label, _, _ in entries) + 40
        height = row * len(entries) + 6
        x = {"upper left": self.left + 8, "upper right": self.left + self.width - width - 8,
             "upper center": self.left + (self.width - width) / 2}[where]
        y = self.top + 8
        self.svg.rect(x, y, width, height, "#ffffff", fill_opacity="0.85", stroke="#bbbbbb", stroke_width=0.8)
        for i, (label, color, kind) in enumerate(entries):
            cy = y + 3 + row * i + row / 2
            if kind == "box":
                self.svg.rect(x + 8, cy - 5, 18, 10, color)
            else:
                self.svg.line(x + 8, cy, x + 26, cy, color, 1.5, dash="4 3" if kind == "dash" else None)
            self.svg.text(x + 32, cy, label, size=size, middle=True)


def _widen(lim: tuple[float, float]) -> tuple[float, float]:
    # Limits may run high to low (an axis drawn downwards); only an empty range is widened.
    lo, hi = float(lim[0]), float(lim[1])
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _nice(lim: tuple[float, float]) -> list[tuple[float, str]]:
    values, step = ticks(min(lim), max(lim))
    return [(v, tick_label(v, step)) for v in values]
