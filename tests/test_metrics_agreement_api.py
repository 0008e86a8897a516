"""``POST /v1/metrics/agreement``: the contract of DESIGN.md, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import auth, make_key

PATH = "/v1/metrics/agreement"
FIELDS = {
    "n_units",
    "n_raters",
    "krippendorff_alpha",
    "fleiss_kappa",
    "cohen_kappa",
    "gwet_ac1",
    "percent_agreement",
    "notes",
}

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units
# with missing values (null); he prints alpha = 0.743 / 0.815 / 0.849 / 0.797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
# Wikipedia, "Fleiss' kappa", worked example: kappa = 0.210, P-bar = 0.378.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]  # fmt: skip
# Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., pp. 55-56: AC1 = 0.7754.
GWET_2014 = [
    ["a", "b", "c", "c", "b", "a", "d", "a", "b", None, None, None],
    ["a", "b", "c", "c", "b", "b", "d", "a", "b", "e", None, None],
    [None, "c", "c", "c", "b", "c", "d", "b", "b", "e", "a", "c"],
    ["a", "b", "c", "c", "b", "d", "d", "a", "b", "e", "a", None],
]


@pytest.fixture
async def key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    return await make_key(sessionmaker, "qa_auditor")


async def post(client: httpx.AsyncClient, key: str, payload: Any) -> httpx.Response:
    return await client.post(PATH, json=payload, headers=auth(key))


async def ok(client: httpx.AsyncClient, key: str, payload: Any) -> dict[str, Any]:
    response = await post(client, key, payload)
    assert response.status_code == 200, response.text
    assert "NaN" not in response.text
    assert "Infinity" not in response.text
    body: dict[str, Any] = response.json()
    assert set(body) == FIELDS
    return body


async def refused(client: httpx.AsyncClient, key: str, payload: Any, words: str) -> None:
    response = await post(client, key, payload)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    said = " ".join([problem.get("detail") or ""] + [e["msg"] for e in problem.get("errors", [])])
    assert words in said, said


async def test_needs_a_valid_key(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, json={"ratings": [[1], [1]]})
    assert response.status_code == 401
    response = await client.post(PATH, json={"ratings": [[1], [1]]}, headers=auth("nope"))
    assert response.status_code == 401


async def test_any_role_may_ask(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for role in ("admin", "manager", "policy_poc", "qa_auditor", "moderator"):
        extra = {"reviewer_id": "mod-1"} if role == "moderator" else {}
        key = await make_key(sessionmaker, role, **extra)
        body = await ok(client, key, {"ratings": [[1, 2], [1, 2]]})
        assert body["krippendorff_alpha"] == 1.0


@pytest.mark.parametrize(
    ("level", "alpha"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
async def test_krippendorff_2011_at_every_level(
    client: httpx.AsyncClient, key: str, level: str, alpha: float
) -> None:
    body = await ok(client, key, {"level": level, "ratings": KRIPPENDORFF_2011})
    assert round(body["krippendorff_alpha"], 3) == alpha
    assert body["n_units"] == 12
    assert body["n_raters"] == 4
    # Unit 12 has one rating: Fleiss' kappa needs equal numbers, Cohen's needs two raters.
    assert body["fleiss_kappa"] is None
    assert body["cohen_kappa"] is None
    assert round(body["percent_agreement"], 4) == 0.8182
    notes = " ".join(body["notes"])
    assert "fleiss_kappa:" in notes
    assert "cohen_kappa:" in notes
    assert "1 of 12 units has fewer than two ratings" in notes


async def test_fleiss_counts(client: httpx.AsyncClient, key: str) -> None:
    body = await ok(client, key, {"counts": FLEISS_WIKIPEDIA})
    assert round(body["fleiss_kappa"], 3) == 0.210
    assert round(body["percent_agreement"], 3) == 0.378
    assert body["n_units"] == 10
    assert body["n_raters"] == 14
    assert body["cohen_kappa"] is None
    assert any(note.startswith("cohen_kappa:") for note in body["notes"])


async def test_gwet_labels_and_declared_categories(client: httpx.AsyncClient, key: str) -> None:
    body = await ok(client, key, {"ratings": GWET_2014})
    assert round(body["gwet_ac1"], 4) == 0.7754
    assert round(body["krippendorff_alpha"], 4) == 0.7434
    declared = await ok(
        client, key, {"ratings": GWET_2014, "categories": ["a", "b", "c", "d", "e", "f"]}
    )
    assert declared["gwet_ac1"] != body["gwet_ac1"]  # AC1 depends on the category set
    assert declared["krippendorff_alpha"] == body["krippendorff_alpha"]  # alpha does not


async def test_cohen_two_raters(client: httpx.AsyncClient, key: str) -> None:
    # Wikipedia, "Cohen's kappa": 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    body = await ok(client, key, {"ratings": [a, b]})
    assert body["cohen_kappa"] == pytest.approx(0.4, abs=1e-12)
    with_missing = await ok(client, key, {"ratings": [[*a, "yes"], [*b, None]]})
    assert with_missing["cohen_kappa"] == pytest.approx(0.4, abs=1e-12)
    assert "cohen_kappa: uses the 50 of 51 units both raters rated" in with_missing["notes"]


async def test_counts_with_values_at_the_interval_level(
    client: httpx.AsyncClient, key: str
) -> None:
    ratings = await ok(client, key, {"level": "interval", "ratings": KRIPPENDORFF_2011})
    counts = [
        [sum(1 for row in KRIPPENDORFF_2011 if row[u] == v) for v in range(1, 6)] for u in range(12)
    ]
    body = await ok(
        client, key, {"level": "interval", "counts": counts, "categories": [1, 2, 3, 4, 5]}
    )
    assert body["krippendorff_alpha"] == pytest.approx(ratings["krippendorff_alpha"], abs=1e-12)


# --- degenerate inputs: a defined answer or null with a note -----------------------------


async def test_one_category_used_by_everyone(client: httpx.AsyncClient, key: str) -> None:
    ratings = [["ok", "ok", "ok"], ["ok", "ok", "ok"]]
    body = await ok(client, key, {"ratings": ratings})
    assert body["krippendorff_alpha"] is None
    assert body["fleiss_kappa"] is None
    assert body["cohen_kappa"] is None
    assert body["gwet_ac1"] is None
    assert body["percent_agreement"] == 1.0
    assert len(body["notes"]) == 4
    declared = await ok(client, key, {"ratings": ratings, "categories": ["ok", "remove"]})
    assert declared["gwet_ac1"] == 1.0


async def test_a_single_unit_and_a_unit_with_one_rating(
    client: httpx.AsyncClient, key: str
) -> None:
    single = await ok(client, key, {"ratings": [[1], [2]]})
    assert single["krippendorff_alpha"] == 0.0
    assert single["n_units"] == 1
    lonely = await ok(client, key, {"ratings": [[1, 2, 3, 3], [1, 2, 3, None]]})
    assert lonely["krippendorff_alpha"] == 1.0
    assert lonely["percent_agreement"] == 1.0
    assert lonely["fleiss_kappa"] is None
    assert any("fewer than two ratings" in note for note in lonely["notes"])


async def test_all_missing(client: httpx.AsyncClient, key: str) -> None:
    body = await ok(client, key, {"level": "interval", "ratings": [[None, None], [None, None]]})
    assert body["n_units"] == 2
    assert [body[name] for name in sorted(FIELDS - {"n_units", "n_raters", "notes"})] == [None] * 5
    assert len(body["notes"]) >= 5


# --- bad input: a clear 422 problem --------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"ratings": [[1, 2, 3], [1, 2]]}, "rater 1 has 2 values but rater 0 has 3"),
        ({"level": "interval", "ratings": [[1, "high"], [1, 2]]}, "must be numbers"),
        ({"level": "ordinal", "ratings": [[1, 2], ["low", 2]]}, "must be numbers"),
        ({"level": "ratio", "ratings": [[1, -2], [1, 2]]}, "non-negative"),
        ({"ratings": [[1, 2, 3]]}, "at least two raters"),
        ({"ratings": []}, "at least two raters"),
        ({"ratings": [[], []]}, "empty"),
        ({}, "either ratings"),
        ({"level": "nominal"}, "either ratings"),
        ({"ratings": [[1], [1]], "counts": [[2]]}, "not both"),
        ({"counts": []}, "at least one unit"),
        ({"counts": [[1, 1], [2]]}, "unit 1 has 1 counts but unit 0 has 2"),
        ({"counts": [[1, 0], [0, 1]]}, "at least two raters"),
        ({"counts": [[2, -1]]}, "greater than or equal to 0"),
        ({"counts": [[1, 1]], "categories": ["a"]}, "1 categories for 2 columns"),
        ({"level": "interval", "counts": [[1, 1]]}, "need categories"),
        ({"level": "interval", "counts": [[1, 1]], "categories": ["lo", "hi"]}, "must be numbers"),
        ({"ratings": [["a", "b"], ["a", "c"]], "categories": ["a", "b"]}, "not one of the"),
        ({"ratings": [["a"], ["a"]], "categories": ["a", "a"]}, "must not repeat"),
        ({"ratings": [[True], [False]]}, "valid number"),
        ({"ratings": [[{}], [1]]}, "valid number"),
        ({"level": "circular", "ratings": [[1], [1]]}, "nominal"),
        ({"ratings": [[1], [1]], "weights": "linear"}, "Extra inputs"),
    ],
)
async def test_bad_input_is_a_clear_422(
    client: httpx.AsyncClient, key: str, payload: dict[str, Any], words: str
) -> None:
    await refused(client, key, payload, words)


async def test_non_finite_numbers_are_refused(client: httpx.AsyncClient, key: str) -> None:
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        response = await client.post(
            PATH,
            content=f'{{"level": "interval", "ratings": [[1, {literal}], [1, 2]]}}',
            headers={**auth(key), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (literal, response.text)


async def test_counts_beyond_the_bound_are_refused(client: httpx.AsyncClient, key: str) -> None:
    # Past int64 they were a 500 (numpy could not hold them).
    for huge in (1_000_001, 2**63, 10**30):
        await refused(client, key, {"counts": [[huge, 1], [1, huge]]}, "less than or equal to")
    body = await ok(client, key, {"counts": [[1_000_000, 0], [0, 1_000_000], [1, 1]]})
    assert body["n_raters"] == 1_000_000


async def test_values_too_close_for_floating_point_get_a_note(
    client: httpx.AsyncClient, key: str
) -> None:
    # Differences of subnormal numbers square to zero: a ZeroDivisionError (500) before.
    tiny = {"level": "interval", "ratings": [[5e-324, 0, 1e-320], [0, 5e-324, 2e-320]]}
    body = await ok(client, key, tiny)
    assert body["krippendorff_alpha"] is None
    assert any(note.startswith("krippendorff_alpha: ") for note in body["notes"])


async def test_too_much_work_at_the_ratio_level(client: httpx.AsyncClient, key: str) -> None:
    # 6,000 distinct values: 36 million value pairs for the expected disagreement.
    values = [float(i) for i in range(6_000)]
    await refused(
        client, key, {"level": "ratio", "ratings": [values, values[::-1]]}, "too many distinct"
    )
    body = await ok(client, key, {"level": "interval", "ratings": [values, values[::-1]]})
    assert body["krippendorff_alpha"] is not None


async def test_the_endpoint_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][PATH]["post"]
    assert "422" in operation["responses"]
    assert set(schema["components"]["schemas"]["AgreementResult"]["properties"]) == FIELDS
