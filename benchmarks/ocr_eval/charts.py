"""A labelled set of generated charts with text, and queries with their relevant charts.

Charts: line, bar, candlestick, pie, scatter and heat map, drawn with Pillow. Each has a title
(tickers such as "XAUUSD" or "XAU/USD", names, timeframes, years), axis labels and ticks,
legends, indicator panels and pattern annotations, in varied fonts (the DejaVu / Liberation
TrueType fonts when installed, else Pillow's built-in font), sizes, accent colours, light and dark
themes; some have rotated labels, some noise and JPEG artefacts. Every chart's data marks use
one accent colour (from the toy CLIP's six colours), so a colour query has a ground truth too.

Queries are built from the charts' labels (not from what OCR reads), in families:
ticker, name+year, indicator/pattern, ticker+timeframe, topic, paraphrase (no shared words),
colour and visual (colour with chart words; image only) and colour+ticker (needs both).
"""

from __future__ import annotations

import glob
import math
import random
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

COLOURS: dict[str, tuple[int, int, int]] = {  # the toy CLIP's colours (modelgen/toy.py)
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 20),
}

# ticker, written form with a slash (or None), name, category
ASSETS: list[tuple[str, str | None, str, str]] = [
    ("XAUUSD", "XAU/USD", "Gold", "metal"),
    ("XAGUSD", "XAG/USD", "Silver", "metal"),
    ("XPTUSD", "XPT/USD", "Platinum", "metal"),
    ("BTCUSD", "BTC/USD", "Bitcoin", "crypto"),
    ("ETHUSD", "ETH/USD", "Ethereum", "crypto"),
    ("SOLUSD", "SOL/USD", "Solana", "crypto"),
    ("EURUSD", "EUR/USD", "Euro", "fx"),
    ("GBPUSD", "GBP/USD", "British Pound", "fx"),
    ("USDJPY", "USD/JPY", "Japanese Yen", "fx"),
    ("AUDUSD", "AUD/USD", "Australian Dollar", "fx"),
    ("SPX", None, "S&P 500", "index"),
    ("NDX", None, "Nasdaq 100", "index"),
    ("DJI", None, "Dow Jones", "index"),
    ("DAX", None, "DAX 40", "index"),
    ("AAPL", None, "Apple", "tech"),
    ("NVDA", None, "Nvidia", "tech"),
    ("MSFT", None, "Microsoft", "tech"),
    ("AMZN", None, "Amazon", "tech"),
    ("TSLA", None, "Tesla", "tech"),
    ("WTI", None, "Crude Oil", "energy"),
    ("BRENT", None, "Brent Crude", "energy"),
    ("NATGAS", None, "Natural Gas", "energy"),
    ("US10Y", None, "10-Year Treasury Yield", "bonds"),
    ("DXY", None, "Dollar Index", "fx_index"),
    ("VIX", None, "Volatility Index", "volatility"),
    ("COPPER", None, "Copper Futures", "industrial"),
]
TIMEFRAMES = ["1H", "4H", "Daily", "Weekly", "Monthly", "15m"]
YEARS = list(range(2019, 2026))
INDICATORS = ["RSI (14)", "MACD (12, 26, 9)", "Stochastic", "Volume", "ATR (14)"]
OVERLAYS = ["EMA 50", "SMA 200", "Bollinger Bands", "VWAP", "EMA 20"]
PATTERNS = ["Bullish divergence", "Bearish divergence", "Double top", "Double bottom",
            "Breakout", "Head and shoulders", "Support", "Resistance", "Ascending triangle",
            "Golden cross"]

# kind, title, category labels, legend
TOPICS: list[tuple[str, str, list[str], list[str]]] = [
    ("bar", "Quarterly revenue by region", ["Q1", "Q2", "Q3", "Q4"],
     ["North America", "Europe", "Asia Pacific"]),
    ("bar", "Monthly sales", ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                              "Oct", "Nov", "Dec"], ["Online", "Retail"]),
    ("bar", "GDP growth by country", ["USA", "Germany", "Japan", "China", "India", "Brazil"], []),
    ("bar", "Unemployment rate", ["2019", "2020", "2021", "2022", "2023", "2024"], []),
    ("bar", "Earnings per share", ["Q1", "Q2", "Q3", "Q4"], ["Estimate", "Actual"]),
    ("pie", "Smartphone market share", ["Apple", "Samsung", "Xiaomi", "Oppo", "Other"], []),
    ("pie", "Portfolio allocation", ["Stocks", "Bonds", "Gold", "Cash", "Real estate"], []),
    ("pie", "Energy mix", ["Coal", "Gas", "Nuclear", "Wind", "Solar", "Hydro"], []),
    ("pie", "Crypto market dominance", ["Bitcoin", "Ethereum", "Tether", "Solana", "Other"], []),
    ("heatmap", "Correlation matrix", ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "SPX"], []),
    ("heatmap", "Sector performance", ["Tech", "Energy", "Health", "Finance", "Utilities"], []),
    ("heatmap", "Monthly returns", ["Jan", "Feb", "Mar", "Apr", "May", "Jun"], []),
    ("scatter", "Risk vs return", ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA"], []),
    ("scatter", "Volume vs volatility", [], []),
    ("line", "Inflation rate CPI YoY", [], ["United States", "Euro area"]),
    ("line", "Website traffic", [], ["Visitors", "Signups"]),
]

PARAPHRASES: dict[str, tuple[str, ...]] = {  # query -> asset categories it means
    "precious metals": ("metal",),
    "cryptocurrency": ("crypto",),
    "foreign exchange currency pair": ("fx",),
    "stock market index": ("index",),
    "big tech company shares": ("tech",),
    "energy commodities": ("energy",),
    "government bond yield": ("bonds",),
    "fear gauge market volatility": ("volatility",),
    "digital assets": ("crypto",),
    "oil and gas": ("energy",),
}


@dataclass
class ChartSpec:
    id: int
    file: str
    kind: str
    width: int
    height: int
    theme: str
    accent: str
    font: str
    title: str
    subtitle: str = ""
    xlabel: str = ""
    ylabel: str = ""
    legend: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    annotation: str = ""
    panel: str = ""
    rotate: int = 0
    noise: float = 0.0
    jpeg: int = 0
    # labels used for relevance
    ticker: str = ""
    asset: str = ""
    category: str = ""
    timeframe: str = ""
    year: int = 0
    indicator: str = ""
    overlays: list[str] = field(default_factory=list)
    pattern: str = ""
    topic: str = ""

    def texts(self) -> list[str]:
        return [t for t in (self.title, self.subtitle, self.xlabel, self.ylabel, self.annotation,
                            self.panel, *self.legend, *self.categories) if t]


# ----------------------------------------------------------------------------- fonts
def font_files() -> list[str]:
    pats = ["/usr/share/fonts/truetype/dejavu/*.ttf", "/usr/share/fonts/truetype/liberation*/*.ttf",
            "/usr/share/fonts/TTF/*.ttf", "C:/Windows/Fonts/arial*.ttf",
            "/Library/Fonts/*.ttf", "/System/Library/Fonts/Supplemental/Arial*.ttf"]
    out = sorted({f for p in pats for f in glob.glob(p)})
    return [f for f in out if "ExtraLight" not in f and "MathTeX" not in f]


def load_font(name: str, size: int) -> ImageFont.ImageFont:
    if name != "builtin":
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 (FreeType): scalable
    except TypeError:  # pragma: no cover - very old Pillow
        return ImageFont.load_default()


# ----------------------------------------------------------------------------- specs
def make_specs(n: int, seed: int) -> list[ChartSpec]:
    rng = random.Random(seed)
    fonts = font_files() or ["builtin"]
    kinds = ["line", "candlestick", "bar", "pie", "scatter", "heatmap"]
    specs = []
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) * 2 else rng.choices(
            kinds, weights=[3, 3, 2, 1.5, 1.2, 1.2])[0]
        w, h = rng.choice([(1400, 800), (1200, 700), (1000, 600), (1600, 900), (800, 500),
                           (900, 900), (640, 400)])
        spec = ChartSpec(
            id=i, file="", kind=kind, width=w, height=h,
            theme=rng.choice(["light", "light", "dark"]), accent=rng.choice(list(COLOURS)),
            font=rng.choice(fonts + ["builtin"] if rng.random() < 0.1 else fonts),
            title="", rotate=rng.choice([0, 0, 0, 45, 90]),
            noise=rng.choice([0, 0, 0, 6, 12]), jpeg=rng.choice([0, 0, 0, 85, 60, 40]),
            year=rng.choice(YEARS),
        )
        if kind in ("line", "candlestick") and rng.random() < 0.85:
            _asset_chart(spec, rng)
        elif kind == "scatter" and rng.random() < 0.3:
            _asset_chart(spec, rng)
            spec.kind = "scatter"
        else:
            _topic_chart(spec, rng)
        ext = "jpg" if spec.jpeg else "png"
        spec.file = f"chart_{i:04d}.{ext}"
        specs.append(spec)
    return specs


def _asset_chart(spec: ChartSpec, rng: random.Random) -> None:
    ticker, slash, name, cat = rng.choice(ASSETS)
    tf = rng.choice(TIMEFRAMES)
    shown = slash if slash and rng.random() < 0.35 else ticker
    spec.ticker, spec.asset, spec.category, spec.timeframe = ticker, name, cat, tf
    style = rng.randrange(4)
    if style == 0:
        spec.title, spec.subtitle = f"{shown} · {tf}", f"{name} price {spec.year}"
    elif style == 1:
        spec.title = f"{name} ({shown}) {tf} chart {spec.year}"
    elif style == 2:
        spec.title, spec.subtitle = f"{shown}, {tf}", f"{name} · {spec.year}"
    else:
        spec.title, spec.subtitle = f"{name} price {spec.year}", f"{shown} {tf}"
    spec.ylabel = rng.choice(["Price (USD)", "Price", "Close", "USD"]) if cat != "bonds" else "Yield %"
    spec.xlabel = rng.choice(["Date", "Time", ""])
    if rng.random() < 0.6:
        spec.indicator = rng.choice(INDICATORS)
        spec.panel = spec.indicator
    if rng.random() < 0.5:
        spec.overlays = rng.sample(OVERLAYS, rng.choice([1, 2]))
        spec.legend = list(spec.overlays)
    if rng.random() < 0.5:
        spec.pattern = rng.choice(PATTERNS)
        spec.annotation = spec.pattern


def _topic_chart(spec: ChartSpec, rng: random.Random) -> None:
    options = [t for t in TOPICS if t[0] == spec.kind] or [t for t in TOPICS if t[0] == "bar"]
    kind, title, cats, legend = rng.choice(options)
    spec.kind = kind
    spec.topic = title
    if title == "Earnings per share":
        ticker, _, name, cat = rng.choice([a for a in ASSETS if a[3] == "tech"])
        spec.ticker, spec.asset, spec.category = ticker, name, cat
        spec.title = f"{ticker} {title} {spec.year}"
    else:
        with_year = rng.random() < 0.8
        spec.title = f"{title} {spec.year}" if with_year else title
        if not with_year:
            spec.year = 0
    spec.categories = list(cats)
    spec.legend = list(legend)
    if kind == "bar":
        spec.ylabel = rng.choice(["USD millions", "Percent", "Units", "%"])
    elif kind == "scatter":
        spec.xlabel, spec.ylabel = ("Volatility", "Return") if "Risk" in title else ("Volume",
                                                                                      "Volatility")
    elif kind == "line":
        spec.ylabel = "Percent" if "Inflation" in title else "Visits"
        spec.xlabel = "Month"


# ----------------------------------------------------------------------------- drawing
def _shade(rgb: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    """t < 0 darkens, t > 0 lightens towards white."""
    if t >= 0:
        return tuple(int(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]
    return tuple(int(c * (1 + t)) for c in rgb)  # type: ignore[return-value]


def _text(img: Image.Image, xy: tuple[float, float], text: str, font, fill, angle: int = 0,
          anchor: str = "la") -> None:
    draw = ImageDraw.Draw(img)
    if not angle:
        draw.text(xy, text, font=font, fill=fill, anchor=anchor)
        return
    box = draw.textbbox((0, 0), text, font=font)
    tw, th = box[2] - box[0] + 4, box[3] - box[1] + 4
    tmp = Image.new("RGBA", (tw, th), (0, 0, 0, 0))
    ImageDraw.Draw(tmp).text((2 - box[0], 2 - box[1]), text, font=font, fill=fill)
    rot = tmp.rotate(angle, expand=True, resample=Image.BICUBIC)
    x, y = xy
    if anchor.startswith("m"):
        x -= rot.width / 2
    img.paste(rot, (int(x), int(y)), rot)


def render(spec: ChartSpec, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed * 100003 + spec.id)
    w, h = spec.width, spec.height
    dark = spec.theme == "dark"
    bg = (19, 23, 34) if dark else rng.choice([(255, 255, 255), (250, 250, 247), (245, 246, 250)])
    bg = tuple(int(c) for c in bg)
    fg = (225, 228, 235) if dark else (30, 34, 45)
    grid = (45, 50, 65) if dark else (225, 228, 232)
    accent = COLOURS[spec.accent]
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    scale = min(w / 1400, h / 800) ** 0.6
    f_title = load_font(spec.font, max(16, int(34 * scale)))
    f_sub = load_font(spec.font, max(13, int(22 * scale)))
    f_small = load_font(spec.font, max(11, int(16 * scale)))

    y = int(16 * scale)
    _text(img, (int(24 * scale), y), spec.title, f_title, fg)
    y += int(46 * scale)
    if spec.subtitle:
        _text(img, (int(24 * scale), y), spec.subtitle, f_sub, _shade(fg, -0.2) if not dark else fg)
        y += int(32 * scale)
    left, right = int(90 * scale) + 20, w - int(40 * scale) - (int(170 * scale) if spec.legend else 0)
    top, bottom = y + 10, h - int(70 * scale) - (int(60 * scale) if spec.rotate else 0)
    panel_h = int((bottom - top) * 0.25) if spec.panel else 0
    main_bottom = bottom - panel_h - (12 if panel_h else 0)
    if spec.kind in ("pie",):
        _pie(img, spec, rng, (left, top, right, bottom), accent, fg, bg, f_small)
    elif spec.kind == "heatmap":
        _heatmap(img, spec, rng, (left + 40, top, right, bottom), accent, fg, bg, f_small)
    else:
        for k in range(5):
            gy = top + (main_bottom - top) * k / 4
            draw.line([(left, gy), (right, gy)], fill=grid, width=1)
        draw.line([(left, top), (left, main_bottom)], fill=fg, width=1)
        draw.line([(left, main_bottom), (right, main_bottom)], fill=fg, width=1)
        _plot(img, spec, rng, (left, top, right, main_bottom), accent, fg, f_small)
        _yticks(img, spec, rng, (left, top, right, main_bottom), fg, f_small)
        _xticks(img, spec, rng, (left, top, right, bottom), fg, f_small)  # under any panel
        if panel_h:
            pt = main_bottom + 12
            draw.rectangle([left, pt, right, bottom], outline=grid)
            series = np.cumsum(rng.normal(0, 1, 80))
            series = (series - series.min()) / (np.ptp(series) + 1e-9)
            pts = [(left + (right - left) * i / 79, bottom - 4 - (bottom - pt - 8) * v)
                   for i, v in enumerate(series)]
            draw.line(pts, fill=_shade(accent, 0.3), width=2)
            _text(img, (left + 6, pt + 4), spec.panel, f_small, fg)
    if spec.ylabel:
        _text(img, (int(8 * scale), (top + main_bottom) / 2 - 40), spec.ylabel, f_small, fg,
              angle=90)
    if spec.xlabel and spec.kind not in ("pie", "heatmap"):
        _text(img, ((left + right) / 2, h - int(26 * scale)), spec.xlabel, f_small, fg,
              anchor="ma")
    if spec.legend:
        lx = right + 16
        for k, name in enumerate(spec.legend):
            ly = top + 10 + k * int(28 * scale + 6)
            draw.rectangle([lx, ly + 4, lx + 14, ly + 16], fill=_shade(accent, 0.35 * k))
            _text(img, (lx + 22, ly), name, f_small, fg)
    if spec.annotation:
        ax = left + (right - left) * float(rng.uniform(0.35, 0.7))
        ay = top + (main_bottom - top) * float(rng.uniform(0.15, 0.45))
        draw.line([(ax, ay + 24), (ax + 40, ay + 70)], fill=fg, width=2)
        _text(img, (ax - 10, ay), spec.annotation, f_sub, fg)
    if rng.random() < 0.3:
        _text(img, (w - int(180 * scale), h - int(24 * scale)), "@chartdesk", f_small,
              _shade(fg, 0.5) if not dark else (120, 125, 140))
    if spec.noise:
        arr = np.asarray(img).astype(np.float32)
        arr += rng.normal(0, spec.noise, arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        if spec.noise > 10:
            img = img.filter(ImageFilter.GaussianBlur(0.6))
    return img


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    s = np.cumsum(rng.normal(0, 1, n)) + rng.uniform(-3, 3) * np.linspace(0, 1, n) * 6
    return (s - s.min()) / (np.ptp(s) + 1e-9)


def _plot(img, spec, rng, rect, accent, fg, font) -> None:
    left, top, right, bottom = rect
    draw = ImageDraw.Draw(img)
    W, H = right - left, bottom - top
    if spec.kind == "line":
        n = 120
        s = _series(rng, n)
        pts = [(left + W * i / (n - 1), bottom - 8 - (H - 16) * v) for i, v in enumerate(s)]
        draw.line(pts, fill=accent, width=3)
        for k, _ in enumerate(spec.legend[:2]):
            sm = np.convolve(s, np.ones(8 + 10 * k) / (8 + 10 * k), mode="same")
            pts = [(left + W * i / (n - 1), bottom - 8 - (H - 16) * v) for i, v in enumerate(sm)]
            draw.line(pts[6:-6], fill=_shade(accent, 0.35 * (k + 1)), width=2)
    elif spec.kind == "candlestick":
        n = int(rng.integers(40, 70))
        s = _series(rng, n + 1)
        cw = W / n
        for i in range(n):
            o, c = s[i], s[i + 1]
            hi = max(o, c) + abs(rng.normal(0, 0.03))
            lo = min(o, c) - abs(rng.normal(0, 0.03))
            col = accent if c >= o else (128, 128, 128)
            x = left + cw * (i + 0.5)
            yy = lambda v: bottom - 8 - (H - 16) * min(max(v, 0), 1)  # noqa: E731
            draw.line([(x, yy(hi)), (x, yy(lo))], fill=col, width=1)
            draw.rectangle([x - cw * 0.35, yy(max(o, c)), x + cw * 0.35, yy(min(o, c)) + 1],
                           fill=col)
    elif spec.kind == "bar":
        cats = spec.categories or ["A", "B", "C", "D"]
        groups = max(1, len(spec.legend))
        gw = W / len(cats)
        for i, _ in enumerate(cats):
            for g in range(groups):
                v = float(rng.uniform(0.2, 0.95))
                x0 = left + gw * i + gw * 0.15 + (gw * 0.7 / groups) * g
                draw.rectangle([x0, bottom - (H - 10) * v, x0 + gw * 0.7 / groups - 2, bottom - 1],
                               fill=_shade(accent, 0.35 * g))
    elif spec.kind == "scatter":
        labels = spec.categories
        for i in range(int(rng.integers(30, 80))):
            x = left + 10 + (W - 20) * float(rng.random())
            y = top + 10 + (H - 20) * float(rng.random())
            r = float(rng.uniform(3, 7))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=accent)
            if i < len(labels):
                _text(img, (x + 8, y - 8), labels[i], font, fg)


def _yticks(img, spec, rng, rect, fg, font) -> None:
    left, top, right, bottom = rect
    base = float(rng.choice([1.08, 25.4, 1850, 42000, 4700, 148, 3.9]))
    for k in range(5):
        v = base * (1 + 0.05 * (4 - k))
        label = f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
        _text(img, (left - 8, top + (bottom - top) * k / 4 - 8), label, font, fg, anchor="ra")


def _xticks(img, spec, rng, rect, fg, font) -> None:
    left, top, right, bottom = rect
    if spec.kind == "bar" and spec.categories:
        labels = spec.categories
    else:
        year = spec.year or 2024
        months = ["Jan", "Mar", "May", "Jul", "Sep", "Nov"]
        labels = [f"{m} {year}" if spec.rotate else m for m in months]
    n = len(labels)
    for i, lab in enumerate(labels):
        x = left + (right - left) * (i + 0.5) / n
        if spec.rotate:
            _text(img, (x, bottom + 6), lab, font, fg, angle=spec.rotate, anchor="ma")
        else:
            _text(img, (x, bottom + 6), lab, font, fg, anchor="ma")


def _pie(img, spec, rng, rect, accent, fg, bg, font) -> None:
    left, top, right, bottom = rect
    draw = ImageDraw.Draw(img)
    r = min(right - left, bottom - top) / 2 - 30
    cx, cy = left + (right - left) * 0.4, (top + bottom) / 2
    vals = rng.uniform(0.5, 3, len(spec.categories))
    vals = vals / vals.sum()
    a0 = -90.0
    for k, (lab, v) in enumerate(zip(spec.categories, vals, strict=True)):
        a1 = a0 + 360 * float(v)
        draw.pieslice([cx - r, cy - r, cx + r, cy + r], a0, a1,
                      fill=_shade(accent, -0.3 + 0.22 * k), outline=bg, width=2)
        mid = math.radians((a0 + a1) / 2)
        tx, ty = cx + (r + 14) * math.cos(mid), cy + (r + 14) * math.sin(mid)
        label = f"{lab} {v * 100:.0f}%"
        anchor = "la" if math.cos(mid) >= 0 else "ra"
        _text(img, (tx, ty - 8), label, font, fg, anchor=anchor)
        a0 = a1


def _heatmap(img, spec, rng, rect, accent, fg, bg, font) -> None:
    left, top, right, bottom = rect
    draw = ImageDraw.Draw(img)
    rows = spec.categories or ["A", "B", "C"]
    cols = rows if spec.topic == "Correlation matrix" else ["2019", "2020", "2021", "2022", "2023"]
    cw, ch = (right - left - 60) / len(cols), (bottom - top - 30) / len(rows)
    x0, y0 = left + 60, top
    for i, rlab in enumerate(rows):
        _text(img, (x0 - 8, y0 + ch * (i + 0.5) - 8), rlab, font, fg, anchor="ra")
        for j in range(len(cols)):
            v = float(rng.uniform(0, 1)) if not (spec.topic == "Correlation matrix" and i == j) else 1
            col = tuple(int(b + (a - b) * v) for a, b in zip(accent, bg, strict=True))
            draw.rectangle([x0 + cw * j, y0 + ch * i, x0 + cw * (j + 1) - 2, y0 + ch * (i + 1) - 2],
                           fill=col)
            if cw > 70 and ch > 30:
                _text(img, (x0 + cw * (j + 0.5), y0 + ch * (i + 0.5) - 8), f"{v:.2f}", font,
                      fg if v < 0.6 else bg, anchor="ma")
    for j, clab in enumerate(cols):
        _text(img, (x0 + cw * (j + 0.5), y0 + ch * len(rows) + 6), clab, font, fg,
              angle=spec.rotate, anchor="ma")


def save(img: Image.Image, spec: ChartSpec, folder: Path) -> Path:
    path = folder / spec.file
    if spec.jpeg:
        buf = BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=spec.jpeg)
        path.write_bytes(buf.getvalue())
    else:
        img.save(path)
    return path


# ----------------------------------------------------------------------------- queries
@dataclass
class Query:
    text: str
    family: str
    relevant: list[int]


def make_queries(specs: list[ChartSpec], seed: int, max_relevant: int = 60) -> list[Query]:
    rng = random.Random(seed + 7)
    out: list[Query] = []

    def add(text: str, family: str, pred) -> None:
        rel = [s.id for s in specs if pred(s)]
        if rel and len(rel) <= max_relevant and text not in {q.text for q in out}:
            out.append(Query(text, family, rel))

    for ticker, _, _, _ in ASSETS:  # A: ticker
        add(ticker, "ticker", lambda s, t=ticker: s.ticker == t)
    for ticker, _, name, _ in ASSETS:  # B: name (+ price) + year
        for year in YEARS:
            if any(s.ticker == ticker and s.year == year for s in specs):
                text = f"{name.lower()} price {year}" if rng.random() < 0.6 else f"{name} {year}"
                add(text, "name+year", lambda s, t=ticker, y=year: s.ticker == t and s.year == y)
    pats = {p: p.lower() for p in PATTERNS}
    for p, text in pats.items():  # C: pattern / indicator
        add(text, "indicator/pattern", lambda s, p=p: s.pattern == p)
    add("RSI divergence", "indicator/pattern",
        lambda s: s.indicator.startswith("RSI") and "divergence" in s.pattern)
    add("MACD", "indicator/pattern", lambda s: s.indicator.startswith("MACD"))
    add("bollinger bands", "indicator/pattern", lambda s: "Bollinger Bands" in s.overlays)
    add("SMA 200", "indicator/pattern", lambda s: "SMA 200" in s.overlays)
    add("stochastic oscillator", "indicator/pattern", lambda s: s.indicator == "Stochastic")
    for ticker, _, _, _ in ASSETS:  # D: ticker + timeframe / pattern
        for tf in TIMEFRAMES:
            if any(s.ticker == ticker and s.timeframe == tf for s in specs) and rng.random() < 0.5:
                add(f"{ticker} {tf}", "ticker+timeframe",
                    lambda s, t=ticker, f=tf: s.ticker == t and s.timeframe == f)
    for _, title, _, _ in TOPICS:  # E: topic
        add(title.lower(), "topic", lambda s, t=title: s.topic == t)
        for year in YEARS:
            if any(s.topic == title and s.year == year for s in specs) and rng.random() < 0.3:
                add(f"{title.lower()} {year}", "topic",
                    lambda s, t=title, y=year: s.topic == t and s.year == y)
    for text, cats in PARAPHRASES.items():  # F: paraphrase, no shared words
        add(text, "paraphrase", lambda s, c=cats: s.category in c and not s.topic)
    for colour in COLOURS:  # G: colour only (the image signal)
        add(f"{colour} chart", "colour", lambda s, c=colour: s.accent == c)
    kinds = ["candlestick chart", "bar chart", "pie chart", "line graph", "scatter plot",
             "heat map"]
    for colour in COLOURS:  # G': colour with chart words: visual queries the chart text must
        for kind in rng.sample(kinds, 2):  # not drown (the toy CLIP judges the colour only)
            add(f"{colour} {kind}", "visual", lambda s, c=colour: s.accent == c)
    for ticker, _, _, _ in ASSETS:  # H: colour + ticker (image and text together)
        for colour in COLOURS:
            if any(s.ticker == ticker and s.accent == colour for s in specs) and rng.random() < 0.2:
                add(f"{colour} {ticker} chart", "colour+ticker",
                    lambda s, t=ticker, c=colour: s.ticker == t and s.accent == c)
    return out


def spec_dict(spec: ChartSpec) -> dict:
    return asdict(spec)
