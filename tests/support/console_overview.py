"""Test support for the QA lead's console pages: a small judged data set, and readers for
the overview's tables and the audits drill-down (HTML parsed with lxml, which python-pptx
brings; it ships no type stubs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import lxml.html  # type: ignore[import-untyped]

from tests.support.analytics import Judged, incorrect
from tests.support.console import ConsoleClient

WINDOW = {"from": "2026-11-02", "to": "2026-11-15"}


def on(day: str, moderator: str, market: str, **fields: Any) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": f"{day}T10:00:00Z", "market": market, **fields}


# DE (mod-a, 2026-11-03): 5 audits, 3 correct, 1 incorrect (over-enforcement: removed, should
# have stayed up) and 1 incorrect overturned on dispute (counts as correct): 4 of 5.
# FR (mod-b, 2026-11-10): 3 audits, 2 correct, 1 wrong policy; one decision never audited.
CASES = [
    *[Judged(on("2026-11-03", "mod-a", "DE")) for _ in range(3)],
    Judged(on("2026-11-03", "mod-a", "DE"), incorrect("approve", "critical")),
    Judged(on("2026-11-03", "mod-a", "DE"), incorrect("approve", "minor"), ruling="overturned"),
    *[Judged(on("2026-11-10", "mod-b", "FR")) for _ in range(2)],
    Judged(on("2026-11-10", "mod-b", "FR"), incorrect("remove", expected_labels=["spam"])),
    Judged(on("2026-11-10", "mod-b", "FR"), verdict=None),
]
AUDITED = {"DE": 5, "FR": 3}


@dataclass(frozen=True)
class Figure:
    """A number in one of the overview's tables, and where it links."""

    row: str
    text: str
    href: str

    def param(self, name: str) -> str:
        """A filter of the drill-down link."""
        return parse_qs(urlsplit(self.href).query)[name][0]


def parse(page: str) -> Any:
    return lxml.html.fromstring(page)


def table_figures(page: str, table_id: str) -> list[Figure]:
    """The linked numbers of a table: its row header, the link's text and target."""
    root = parse(page)
    figures: list[Figure] = []
    for row in root.xpath(f'//table[@id="{table_id}"]/tbody/tr'):
        header = row.xpath("./th")
        for link in row.xpath("./td/a"):
            figures.append(
                Figure(
                    row=header[0].text_content().strip() if header else "",
                    text=link.text_content().strip(),
                    href=link.get("href"),
                )
            )
    return figures


def problems(page: str) -> list[str]:
    """The messages of the form's problem box."""
    return [
        item.text_content().strip() for item in parse(page).xpath('//*[@id="filter-problems"]//li')
    ]


async def audits_behind(console: ConsoleClient, href: str) -> list[str]:
    """Every audit id the drill-down lists, following its pages."""
    ids: list[str] = []
    target: str | None = href
    while target is not None:
        response = await console.page(target)
        assert response.status_code == 200, response.text
        root = parse(response.text)
        ids += [
            link.get("href").rsplit("/", 1)[-1]
            for link in root.xpath('//table[@id="audits"]//tr[@class="audit-row"]/th/a')
        ]
        following = root.xpath('//a[@rel="next"]')
        target = following[0].get("href") if following else None
    return ids
