"""Accessibility checks of console pages: WCAG 2.x contrast (pure), and what a browser page
is asked about itself (accessible names, headings, ids, language, keyboard reach, scroll).

Contrast, per WCAG 2.2 (https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio and
https://www.w3.org/TR/WCAG22/#dfn-relative-luminance):

    contrast ratio = (L1 + 0.05) / (L2 + 0.05), L1 the lighter colour's relative luminance;
    L = 0.2126 R + 0.7152 G + 0.0722 B, where for each sRGB channel c in [0, 1]
    R, G, B = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4.

Success criterion 1.4.3 (AA): at least 4.5:1 for text, 3:1 for large text (at least 18 pt,
i.e. 24 px, or 14 pt = 18.66 px bold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from playwright.async_api import Page

AA_TEXT = 4.5
AA_LARGE_TEXT = 3.0

RGB = tuple[float, float, float]

_NAMED = {"white": (255.0, 255.0, 255.0), "black": (0.0, 0.0, 0.0)}


def _channel(value: float) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: RGB) -> float:
    r, g, b = (_channel(part) for part in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: RGB, second: RGB) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def parse_colour(value: str, variables: dict[str, str] | None = None) -> RGB | None:
    """``#rgb``, ``#rrggbb``, ``rgb()``/``rgba()`` (opaque), white, black, or ``var(--x)``;
    None for anything else (transparent, inherit, currentColor, gradients)."""
    value = value.strip().lower()
    found = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if found:
        if variables is None or found.group(1) not in variables:
            return None
        return parse_colour(variables[found.group(1)], variables)
    if value in _NAMED:
        return _NAMED[value]
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return (
            int(value[1] * 2, 16) * 1.0,
            int(value[2] * 2, 16) * 1.0,
            int(value[3] * 2, 16) * 1.0,
        )
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return (int(value[1:3], 16) * 1.0, int(value[3:5], 16) * 1.0, int(value[5:7], 16) * 1.0)
    found = re.fullmatch(r"rgba?\(([^)]*)\)", value)
    if found:
        parts = [float(p) for p in re.findall(r"[\d.]+", found.group(1))]
        if len(parts) >= 3 and (len(parts) == 3 or parts[3] >= 1):
            return (parts[0], parts[1], parts[2])
    return None


def blend(rgba: list[float], background: RGB) -> RGB:
    """A colour with alpha as it shows over ``background``."""
    alpha = rgba[3] if len(rgba) > 3 else 1.0
    r, g, b = (rgba[i] * alpha + background[i] * (1 - alpha) for i in range(3))
    return (r, g, b)


@dataclass(frozen=True)
class Rule:
    selector: str
    declarations: dict[str, str]


def css_rules(css: str) -> list[Rule]:
    """The style rules of a stylesheet (also those inside ``@media``), comments removed."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for declaration in body.split(";"):
            name, _, value = declaration.partition(":")
            if value.strip():
                declarations[name.strip().lower()] = value.strip()
        rules.append(Rule(" ".join(selector.split()), declarations))
    return rules


def custom_properties(rules: list[Rule]) -> dict[str, str]:
    return {
        name: value
        for rule in rules
        if rule.selector == ":root"
        for name, value in rule.declarations.items()
        if name.startswith("--")
    }


def _background(rule: Rule) -> str | None:
    value = rule.declarations.get("background-color") or rule.declarations.get("background")
    if value is None:
        return None
    # The first colour in a background shorthand.
    found = re.search(
        r"var\(--[\w-]+\)|#[0-9a-fA-F]{3,6}\b|rgba?\([^)]*\)|\bwhite\b|\bblack\b", value
    )
    return found.group(0) if found else None


class _HeaderClasses(HTMLParser):
    """The classes of the elements inside ``<header class="top">`` of a template."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.classes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self.depth:
            self.depth += tag not in ("input", "meta", "link", "br", "img")
            self.classes.update(classes)
        elif tag == "header" and "top" in classes:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1


def header_classes(base_template: str) -> set[str]:
    parser = _HeaderClasses()
    parser.feed(re.sub(r"\{[{%#].*?[}%#]\}", "", base_template, flags=re.S))
    return parser.classes


@dataclass(frozen=True)
class ColourPair:
    selector: str
    text: str
    background: str
    ratio: float


def stylesheet_pairs(css: str, base_template: str) -> list[ColourPair]:
    """The text/background colour pairs a stylesheet sets up.

    A rule with both a colour and a background is one pair. A rule setting only the text
    colour is read against the background its text sits on: the top bar's for the top bar and
    what is inside it (by the classes ``base.html`` puts there), else the page and the panel
    backgrounds. A rule setting only a background carries the page's text colour.
    """
    rules = css_rules(css)
    variables = custom_properties(rules)
    root = next(rule for rule in rules if rule.selector == ":root")
    page_text = root.declarations["color"]
    page_backgrounds = [root.declarations["background"], "var(--panel)"]
    in_header = header_classes(base_template)
    header_background = next(
        _background(rule) for rule in rules if rule.selector == "header.top" and _background(rule)
    )

    def sits_in_header(selector: str) -> bool:
        first = selector.split()[0]
        return first.startswith("header.top") or any(
            re.search(rf"\.{re.escape(name)}\b", first) for name in in_header
        )

    pairs = []
    for rule in rules:
        if rule.selector == ":root":
            continue
        for selector in (part.strip() for part in rule.selector.split(",")):
            if ":disabled" in selector or "visually-hidden" in selector:
                continue  # disabled controls are exempt (WCAG 1.4.3); hidden text is not seen
            text = rule.declarations.get("color")
            background = _background(rule)
            if text is not None and background is not None:
                combos = [(text, background)]
            elif text is not None:
                backgrounds = [header_background] if sits_in_header(selector) else page_backgrounds
                combos = [(text, b) for b in backgrounds if b is not None]
            elif background is not None:
                combos = [(page_text, background)]
            else:
                continue
            for fg, bg in combos:
                fg_rgb, bg_rgb = parse_colour(fg, variables), parse_colour(bg, variables)
                if fg_rgb is None or bg_rgb is None:
                    continue
                pairs.append(ColourPair(selector, fg, bg, contrast_ratio(fg_rgb, bg_rgb)))
    return pairs


# ------------------------------------------------------------------------- in the browser

_FACTS_JS = """
() => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
    && getComputedStyle(el).visibility !== 'hidden';
  const text = (el) => (el.textContent || '').replace(/\\s+/g, ' ').trim();
  const nameOf = (el) => {
    const labelledBy = el.getAttribute('aria-labelledby');
    if (labelledBy) {
      const named = labelledBy.split(/\\s+/).map((id) => document.getElementById(id))
        .filter(Boolean).map(text).join(' ').trim();
      if (named) return named;
    }
    const label = (el.getAttribute('aria-label') || '').trim();
    if (label) return label;
    if (el.labels && el.labels.length) {
      const named = Array.from(el.labels).map(text).join(' ').trim();
      if (named) return named;
    }
    if (el.tagName === 'BUTTON') {
      const named = text(el);
      if (named) return named;
      const img = el.querySelector('img[alt]');
      if (img && img.alt.trim()) return img.alt.trim();
    }
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) {
      return (el.value || '').trim();
    }
    if (el.tagName === 'INPUT' && el.type === 'image') return (el.alt || '').trim();
    return (el.getAttribute('title') || '').trim();
  };
  const controls = Array.from(document.querySelectorAll('input, select, textarea, button'))
    .filter((el) => el.type !== 'hidden');
  const unnamed = controls.filter((el) => !nameOf(el)).map((el) => el.outerHTML.slice(0, 160));
  const headings = Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6'))
    .map((h) => [Number(h.tagName[1]), text(h).slice(0, 60)]);
  const ids = Array.from(document.querySelectorAll('[id]')).map((el) => el.id);
  const duplicateIds = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
  const focusable = Array.from(document.querySelectorAll(
    'a[href], button, input, select, textarea, summary, [tabindex]'))
    .filter((el) => el.type !== 'hidden' && !el.disabled && el.tabIndex >= 0 && visible(el)
      && !el.closest('[inert]'));
  focusable.forEach((el, i) => el.setAttribute('data-a11y-index', String(i)));
  const describe = (el) => `${el.tagName.toLowerCase()} "${(nameOf(el) || text(el)).slice(0, 40)}"`
    + (el.type === 'radio' ? ` (radio ${el.name})` : '');
  const radioGroup = (el) => (el.tagName === 'INPUT' && el.type === 'radio' && el.name)
    ? `radio:${Array.from(document.forms).indexOf(el.form)}:${el.name}` : null;
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const backgroundOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const colours = new Map();
  for (const el of document.body.querySelectorAll('*')) {
    if (!visible(el) || el.closest('[disabled], .visually-hidden, canvas, script, style')) continue;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const fg = parse(style.color);
    const bg = backgroundOf(el);
    const key = `${fg}|${bg}|${large}`;
    if (!colours.has(key)) {
      const sample = `${el.tagName.toLowerCase()} "${text(el).slice(0, 40)}"`;
      colours.set(key, {fg, bg, large, sample});
    }
  }
  return {
    lang: document.documentElement.getAttribute('lang') || '',
    unnamed,
    headings,
    duplicateIds,
    focusable: focusable.map((el) => ({describe: describe(el), group: radioGroup(el)})),
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    colours: Array.from(colours.values()),
  };
}
"""


async def page_problems(page: Page, *, language: str) -> list[str]:
    """What is wrong with the open page's accessibility (empty when nothing)."""
    facts: dict[str, Any] = await page.evaluate(_FACTS_JS)
    problems = []
    if facts["lang"] != language:
        problems.append(f"<html lang> is {facts['lang']!r}, not {language!r}")
    for control in facts["unnamed"]:
        problems.append(f"control without an accessible name: {control}")
    levels = [level for level, _ in facts["headings"]]
    if not levels or levels[0] != 1 or levels.count(1) != 1:
        problems.append(f"headings do not start with exactly one h1: {facts['headings']}")
    for (before, _), (after, title) in zip(facts["headings"], facts["headings"][1:], strict=False):
        if after > before + 1:
            problems.append(f"heading h{after} {title!r} skips a level after h{before}")
    for duplicate in facts["duplicateIds"]:
        problems.append(f"duplicate id {duplicate!r}")
    if facts["scrollWidth"] > facts["clientWidth"]:
        problems.append(
            f"scrolls sideways: {facts['scrollWidth']} px wide in {facts['clientWidth']} px"
        )
    for colour in facts["colours"]:
        background = (float(colour["bg"][0]), float(colour["bg"][1]), float(colour["bg"][2]))
        ratio = contrast_ratio(blend(colour["fg"], background), background)
        needed = AA_LARGE_TEXT if colour["large"] else AA_TEXT
        if ratio < needed - 0.005:
            problems.append(
                f"contrast {ratio:.2f}:1 < {needed}:1 for {colour['sample']} "
                f"(rgb{tuple(colour['fg'][:3])} on rgb{tuple(colour['bg'][:3])})"
            )
    problems.extend(await _keyboard_problems(page, facts["focusable"]))
    return problems


async def _keyboard_problems(page: Page, focusable: list[dict[str, Any]]) -> list[str]:
    """Tab through the page (once round, and a little more): every control must be reached;
    a radio group counts as reached when one of its radios is (arrows move inside it)."""
    # Start from the top of the page (an autofocused field would start in the middle).
    await page.evaluate(
        """() => {
          const start = document.createElement('span');
          start.tabIndex = -1;
          document.body.prepend(start);
          start.focus();
        }"""
    )
    reached: set[int] = set()
    # Some stops are not controls (scrollable regions are focusable in Chromium): go on
    # until every control is reached or focus comes back round to the first one reached.
    first: int | None = None
    for _ in range(2 * len(focusable) + 20):
        await page.keyboard.press("Tab")
        index = await page.evaluate(
            "() => document.activeElement && document.activeElement.getAttribute('data-a11y-index')"
        )
        if index is None:
            continue
        if int(index) == first or len(reached) == len(focusable):
            break
        first = int(index) if first is None else first
        reached.add(int(index))
    reached_groups = {focusable[i]["group"] for i in reached if focusable[i]["group"]}
    return [
        f"not reachable by Tab: {control['describe']}"
        for i, control in enumerate(focusable)
        if i not in reached and not (control["group"] and control["group"] in reached_groups)
    ]
