"""The console in a real browser (Debian's Chromium): signing in and out."""

from __future__ import annotations

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.console import make_person


async def test_sign_in_lands_on_the_daily_page_and_sign_out_ends_it(
    page: Page, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    await page.goto("/console/")
    await expect(page).to_have_url("/console/sign-in?next=/console/")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/overview")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["plumbline_session"]["httpOnly"] is True
    assert cookies["plumbline_session"]["sameSite"] == "Lax"
    await page.goto("/console/account")
    await expect(page.get_by_text(person.email).first).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/sign-in")
    await page.goto("/console/account")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_a_wrong_password_shows_an_error_on_the_form(
    page: Page, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "qa_auditor")
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill("not the right one")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not right")


async def test_the_language_choice_switches_to_german_and_is_remembered(
    page: Page, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager")
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/overview")
    await page.goto("/console/account")
    await page.get_by_label("Language").select_option("de")
    await expect(page.get_by_role("heading", name="Ihr Konto")).to_be_visible()
    await expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
    # Remembered on the person: a new browser session signs in to German.
    await page.context.clear_cookies()
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/overview")
    await page.goto("/console/account")
    await expect(page.get_by_role("heading", name="Ihr Konto")).to_be_visible()
