"""The confusion report: moderator action x expected action, and per-policy precision and
recall with Wilson intervals, from rollups kept by the real write paths (decisions over the
signed webhook, verdicts, disputes and rulings over the API)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.confusion import ACTIONS, confusion_matrix, policy_enforcement_row
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.problems import assert_problem

REPORT = "/v1/reports/confusion"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _decision(action: str, labels: list[str], moderator: str = "mod-a") -> dict[str, Any]:
    return {"action": action, "policy_labels": labels, "moderator_id": moderator}


HATE, SPAM = ["hate_speech"], ["spam"]
# The data set, tabulated by hand. "Truth enforces p" when the verdict is (effectively)
# correct and the moderator enforced p, or it is incorrect and the auditor expects remove or
# restrict with p among the expected labels.
#
#  #  moderator         verdict                           -> matrix cell         hate  spam
#  1  remove [hate]     correct                           remove -> remove       TP
#  2  remove [hate]     correct                           remove -> remove       TP
#  3  remove [hate]     incorrect: approve, overturned    remove -> remove       TP
#  4  approve []        incorrect: remove [hate]          approve -> remove      FN
#  5  remove [hate]     incorrect: remove [spam]          remove -> remove       FP    FN
#  6  restrict [spam]   correct                           restrict -> restrict         TP
#  7  approve []        correct                           approve -> approve     ((none))
#  8  escalate [hate]   incorrect: remove [hate]          escalate -> remove     FN
#  9  remove [hate]     incorrect: approve, upheld        remove -> approve      FP
#
# hate_speech: TP 3 (1, 2, 3), FP 2 (5, 9), FN 2 (4, 8): precision 3/5, recall 3/5.
# spam:        TP 1 (6),       FP 0,        FN 1 (5):    precision 1/1, recall 1/2.
CASES = [
    Judged(_decision("remove", HATE)),
    Judged(_decision("remove", HATE)),
    Judged(_decision("remove", HATE), incorrect("approve"), ruling="overturned"),
    Judged(_decision("approve", []), incorrect("remove", expected_labels=HATE)),
    Judged(_decision("remove", HATE), incorrect("remove", expected_labels=SPAM)),
    Judged(_decision("restrict", SPAM)),
    Judged(_decision("approve", [])),
    Judged(_decision("escalate", HATE), incorrect("remove", expected_labels=HATE)),
    Judged(_decision("remove", HATE), incorrect("approve"), ruling="upheld"),
    # Another moderator's verdict, for the moderator key's view.
    Judged(_decision("remove", SPAM, moderator="mod-b")),
]


def _cells(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, float | None]]:
    return {
        (cell["action"], cell["expected_action"]): (cell["verdicts"], cell["share"])
        for cell in body["rows"]
    }


def test_the_matrix_has_every_cell_and_shares_of_its_row() -> None:
    cells = confusion_matrix({("remove", "approve"): 1, ("remove", "remove"): 3})
    assert [(cell.action, cell.expected_action) for cell in cells] == [
        (action, expected) for action in ACTIONS for expected in ACTIONS
    ]
    shares = {(cell.action, cell.expected_action): cell.share for cell in cells}
    assert shares[("remove", "approve")] == 0.25
    assert shares[("remove", "restrict")] == 0.0
    # No verdict on an approve: no share to speak of.
    assert shares[("approve", "approve")] is None


def test_a_policy_never_enforced_has_no_precision_and_says_why() -> None:
    row = policy_enforcement_row("spam", audited=4, tp=0, fp=0, fn=3, min_audits=30)
    # Recall 0/3: Wilson [0, z^2 / (3 + z^2)] = [0, 3.841459 / 6.841459] = [0, 0.561497].
    assert (row.precision, row.recall, row.recall_ci_low) == (None, 0.0, 0.0)
    assert row.recall_ci_high == pytest.approx(0.561497, abs=1e-6)
    assert row.note is not None
    assert "no precision" in row.note
    assert row.small_sample is True


async def test_matrix_and_policies_match_the_hand_tabulation(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    """See the table above CASES. Wilson 95 % (z = 1.959964, z^2 = 3.841459):
    3/5: centre = (0.6 + z^2/10) / (1 + z^2/5) = 0.984146 / 1.768292 = 0.556551,
         half = z sqrt(0.24/5 + z^2/100) / 1.768292 = 1.959964 * 0.293964 / 1.768292
              = 0.325829: [0.230722, 0.882380];
    1/1: [1 / (1 + z^2), 1] = [0.206549, 1];
    1/2: centre 0.5, half = z sqrt(0.125 + z^2/16) / (1 + z^2/2) = 0.405469: [0.094531, 0.905469].
    """
    await seed_judged(client, sender, sessionmaker, CASES)
    response = await client.get(
        REPORT, params={**WINDOW, "moderator_id": "mod-a", "min_audits": "5"},
        headers=auth(admin_key),
    )  # fmt: skip

    assert response.status_code == 200, response.text
    body = response.json()
    cells = _cells(body)
    assert len(cells) == 16
    assert {cell: count for cell, (count, _) in cells.items() if count} == {
        ("remove", "remove"): 4,  # 1, 2, 3 (overturned: correct), 5 (same action)
        ("remove", "approve"): 1,  # 9
        ("approve", "remove"): 1,  # 4
        ("approve", "approve"): 1,  # 7
        ("restrict", "restrict"): 1,  # 6
        ("escalate", "remove"): 1,  # 8
    }
    assert cells[("remove", "remove")][1] == pytest.approx(4 / 5)
    assert cells[("approve", "remove")][1] == pytest.approx(1 / 2)
    assert cells[("remove", "escalate")] == (0, 0.0)

    hate, spam = body["policies"]
    assert hate == {
        "policy": "hate_speech",
        "tp": 3,
        "fp": 2,
        "fn": 2,
        "precision": pytest.approx(0.6),
        "precision_ci_low": pytest.approx(0.230724, abs=1e-6),
        "precision_ci_high": pytest.approx(0.882379, abs=1e-6),
        "recall": pytest.approx(0.6),
        "recall_ci_low": pytest.approx(0.230724, abs=1e-6),
        "recall_ci_high": pytest.approx(0.882379, abs=1e-6),
        "small_sample": False,  # 7 verdicts concern hate_speech (1-5, 8, 9)
        "note": None,
    }
    assert (spam["policy"], spam["tp"], spam["fp"], spam["fn"]) == ("spam", 1, 0, 1)
    assert (spam["precision"], spam["precision_ci_low"]) == (1.0, pytest.approx(0.206549, 1e-5))
    assert (spam["recall"], spam["recall_ci_low"]) == (0.5, pytest.approx(0.094531, abs=1e-6))
    assert spam["small_sample"] is True  # 2 verdicts concern spam (5, 6)

    # Under policy=spam the matrix holds the verdicts concerning spam only: 5 and 6.
    only_spam = await client.get(
        REPORT, params={**WINDOW, "moderator_id": "mod-a", "policy": "spam"},
        headers=auth(admin_key),
    )  # fmt: skip
    spam_cells = {cell: n for cell, (n, _) in _cells(only_spam.json()).items() if n}
    assert spam_cells == {("remove", "remove"): 1, ("restrict", "restrict"): 1}
    assert [row["policy"] for row in only_spam.json()["policies"]] == ["spam"]


async def test_a_moderator_key_sees_only_its_own_verdicts(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")

    body = (await client.get(REPORT, params=WINDOW, headers=auth(own))).json()

    assert {cell: n for cell, (n, _) in _cells(body).items() if n} == {("remove", "remove"): 1}
    assert [(row["policy"], row["tp"]) for row in body["policies"]] == [("spam", 1)]
    other = await client.get(REPORT, params={**WINDOW, "moderator_id": "mod-a"}, headers=auth(own))
    assert_problem(other, 403)


async def test_files_csv_holds_the_cells_and_the_german_workbook_two_sheets(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker, admin_key: str
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)
    body = (await client.get(REPORT, params=WINDOW, headers=auth(admin_key))).json()

    answer = await client.get(REPORT, params={**WINDOW, "format": "csv"}, headers=auth(admin_key))
    assert answer.status_code == 200, answer.text
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0] == list(body["rows"][0]) == ["action", "expected_action", "verdicts", "share"]
    assert len(table) == 17
    assert table[1:3] == [["approve", "approve", "1", "0.5"], ["approve", "remove", "1", "0.5"]]

    workbook_answer = await client.get(
        REPORT, params={**WINDOW, "format": "xlsx", "lang": "de"}, headers=auth(admin_key)
    )
    assert workbook_answer.status_code == 200, workbook_answer.text
    workbook = load_workbook(io.BytesIO(workbook_answer.content))
    assert workbook.sheetnames == ["Konfusionsmatrix", "Richtlinien", "Info"]
    matrix = workbook["Konfusionsmatrix"]
    assert [cell.value for cell in matrix[1]] == [
        "Aktion des Moderators",
        "Erwartete Aktion",
        "Urteile",
        "Anteil",
    ]
    assert matrix.max_row == 17
    policies = workbook["Richtlinien"]
    assert [cell.value for cell in policies[1]][:2] == ["Richtlinie", "Richtig positiv"]
    assert [row[0].value for row in policies.iter_rows(min_row=2)] == ["hate_speech", "spam"]


async def test_an_empty_window_has_every_cell_at_zero_and_no_policies(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    body = (await client.get(REPORT, params=WINDOW, headers=auth(admin_key))).json()
    assert set(_cells(body).values()) == {(0, None)}
    assert len(body["rows"]) == 16
    assert body["policies"] == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-11-30"}, "to"),
        ({"format": "png"}, "format"),
        ({"group_by": "market"}, "group_by"),
        ({"policy": "Hate Speech"}, "policy"),
        ({"min_audits": "-1"}, "min_audits"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, str], parameter: str
) -> None:
    response = await client.get(REPORT, params={**WINDOW, **params}, headers=auth(admin_key))
    assert_problem(response, 422)
    assert parameter in response.text
