"""The gallery in a real headless Chromium: cards, search, filters, hover, detail, hostile text.

One archive, made by a real run against the emulator, and one browser serve the whole module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archiver import cli, gallery
from archiver.catalog import Access, open_catalog, sqlite_testing
from archiver.config import Config
from archiver.testing import Emulator, MediaLibrary, VideoSpec, synthetic
from archiver.testing.browser import Browser, chromium

from .conftest import FAST, TOKEN

HOSTILE_NAME = '<img src=x onerror="window.pwned=1">"><b>bold</b>'
HOSTILE_PROMPT = (
    '<script>window.pwned=2;alert(2)</script> "><img src=y onerror=alert(3)> </script> '
    'javascript:alert(4) <a href="javascript:alert(5)">link</a>'
)


@dataclass
class Archive:
    root: Path
    url: str
    ids: dict[str, str]

    def folder(self, key: str) -> str:
        return str(sqlite_testing.read(self.root / "catalog.sqlite3").tasks[self.ids[key]].dir)

    def sha256s(self, key: str) -> set[str]:
        held = sqlite_testing.read(self.root / "catalog.sqlite3")
        return {f.sha256 for f in held.files_of(self.ids[key])}


def _seed(emu: Emulator) -> dict[str, str]:
    ids = {
        "fox": emu.add_task(name="Gen-3 Alpha 101, a red fox", prompt="a red fox in the snow"),
        "city": emu.add_task(name="Gen-4 Turbo 202, neon city", prompt="neon city at night"),
        "hostile": emu.add_task(name=HOSTILE_NAME, prompt=HOSTILE_PROMPT),
        "owl": emu.add_task(
            name="Gen-2 303, an owl",
            options={"seed": 77, "gen2Options": {"textPrompt": "an owl at dusk", "mode": "gen2"}},
            video=VideoSpec(seconds=3.0),
        ),
        "failed": emu.add_task("FAILED", name="Gen-3 Alpha 404, a failure"),
        "cancelled": emu.add_task("CANCELLED", name="Gen-3 Alpha 505, cancelled"),
    }
    city = emu.task_json(ids["city"])
    city["taskType"] = "gen4_turbo"
    city["createdAt"] = "2024-03-15T10:00:00.000Z"
    return ids


@pytest.fixture(scope="module")
def archive(media: MediaLibrary, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    work = tmp_path_factory.mktemp("gallery")
    root = work / "archive"
    config = work / "config.yaml"
    config.write_text(json.dumps(FAST))
    with (
        Emulator(media, token=TOKEN).running_in_thread() as emu,
        pytest.MonkeyPatch.context() as mp,
    ):
        ids = _seed(emu)
        mp.setenv("USEAPI_TOKEN", TOKEN)
        mp.setenv("USEAPI_BASE_URL", emu.api_url)
        mp.setenv("XDG_CONFIG_HOME", str(work / "xdg"))
        argv = ["-o", str(root), "-c", str(config)]
        assert cli.main(["run", "--no-progress", *argv, *ids.values()]) == 0
    assert cli.main(["gallery", *argv]) == 0
    return Archive(root, (root / "index.html").as_uri(), ids)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def count(b: Browser) -> int:
    return int(b.find("#count").get_attribute("data-n") or -1)


def wait_count(b: Browser, n: int) -> None:
    b.until(lambda: count(b) == n)


def open_fresh(b: Browser, url: str) -> None:
    b.open("about:blank", ready=False)
    b.open(url)


def test_one_card_per_archived_task(archive: Archive, browser: Browser) -> None:
    """The page shows one card per succeeded task, and the failed ones when asked."""
    open_fresh(browser, archive.url)
    assert count(browser) == 4
    assert len(browser.find_all(".card")) == 4
    assert "4 tasks" in browser.find("#totals").text and "2 failed" in browser.find("#totals").text
    open_fresh(browser, archive.url + "#status=SUCCEEDED,FAILED,CANCELLED")
    assert len(browser.find_all(".card")) == 6
    assert browser.console_errors() == []


def test_search_narrows_and_the_fragment_restores_it(archive: Archive, browser: Browser) -> None:
    """Typing narrows the cards by name or prompt, case-insensitively; the search is in the
    fragment, survives a reload, and the back button undoes it."""
    open_fresh(browser, archive.url)
    browser.find("#q").send_keys("RED Fox")
    # The search runs a moment after the last key: wait for the whole of it to be in the URL.
    browser.until(lambda: "q=RED+Fox" in browser.driver.current_url)
    assert count(browser) == 1
    assert browser.text(".card .name") == "Gen-3 Alpha 101, a red fox"
    browser.driver.refresh()
    browser.until(lambda: browser.js("return document.documentElement.dataset.loaded"))
    assert browser.find("#q").get_attribute("value") == "RED Fox"
    assert count(browser) == 1
    browser.find("#q").clear()
    browser.find("#q").send_keys("owl at dusk")  # the prompt is in gen2Options
    browser.until(lambda: "q=owl+at+dusk" in browser.driver.current_url)
    assert count(browser) == 1
    assert browser.text(".card .name") == "Gen-2 303, an owl"
    browser.driver.back()
    wait_count(browser, 1)
    assert browser.find("#q").get_attribute("value") == "RED Fox"
    browser.driver.back()
    wait_count(browser, 4)


def test_each_filter_narrows_the_cards(archive: Archive, browser: Browser) -> None:
    """Model, status, date range and inputs each narrow the cards; failed ones show their error."""
    open_fresh(browser, archive.url)
    browser.choose("#model", "gen4_turbo")
    wait_count(browser, 1)
    assert browser.find(".card .name").text == "Gen-4 Turbo 202, neon city"
    browser.choose("#model", "")
    wait_count(browser, 4)
    browser.find("#status input[value=FAILED]").click()
    wait_count(browser, 5)
    browser.find("#status input[value=SUCCEEDED]").click()
    wait_count(browser, 1)
    error = "SAFETY.INPUT.TEXT: This generation could not be completed."
    assert browser.find(".card.failed .error").text == error
    open_fresh(browser, archive.url)
    for field, value in (("#from", "2024-03-01"), ("#to", "2024-03-31")):
        browser.js(
            "const f = document.querySelector(arguments[0]); f.value = arguments[1];"
            "f.dispatchEvent(new Event('change', {bubbles: true}))",
            field,
            value,
        )
    wait_count(browser, 1)
    assert browser.find(".card .name").text == "Gen-4 Turbo 202, neon city"
    open_fresh(browser, archive.url)
    browser.choose("#inputs", "with")  # every task with the default options has an init_image
    wait_count(browser, 3)
    names = {e.text for e in browser.find_all(".card .name")}
    assert "Gen-2 303, an owl" not in names and "Gen-3 Alpha 101, a red fox" in names
    browser.choose("#inputs", "without")
    wait_count(browser, 1)
    assert browser.find(".card .name").text == "Gen-2 303, an owl"


def test_hovering_a_card_plays_its_video(archive: Archive, browser: Browser) -> None:
    """The pointer over a card starts its muted video (its time advances); leaving drops it."""
    open_fresh(browser, archive.url)
    card = browser.find(".card")
    browser.hover(card)
    browser.until(
        lambda: browser.js(
            "const v = document.querySelector('.card video'); return v && v.currentTime > 0.2"
        )
    )
    assert browser.js("return document.querySelector('.card video').muted") is True
    browser.hover(browser.find("#q"))
    browser.until(lambda: browser.find_all(".card video") == [])


def test_detail_shows_options_inputs_and_every_sha256(archive: Archive, browser: Browser) -> None:
    """Clicking a card opens its detail: the video with controls, the options, the input
    asset, and each file's sha256; the arrow keys move through the results, Escape closes."""
    open_fresh(browser, archive.url + "#q=fox")
    browser.find(".card").click()
    browser.until(lambda: browser.find_all("#detail td.sha"))
    shown = [e.text for e in browser.find_all("#detail td.sha")]
    # the video, three previews and the init_image input
    assert len(shown) == 5
    assert set(shown) == archive.sha256s("fox")
    options = {
        r.find_element("css selector", "th").text: r.find_element("css selector", "td").text
        for r in browser.find_all("#detail table.options tr")
    }
    assert options["text_prompt"] == "a red fox in the snow"
    assert options["seed"] == "123456789"
    assert options["init_image"].endswith("?…")
    assert browser.find("#detail ul.inputs a").text == "init_image.jpg"
    kinds = [e.text for e in browser.find_all("#detail table.files tbody td:nth-child(2)")]
    assert kinds.count("input") == 1
    assert browser.js("return document.querySelector('#detail .media video').controls") is True
    assert "verified: h264, 320×192" in browser.find("#detail table.files tbody td:last-child").text
    assert "task=" in browser.driver.current_url
    browser.keys("Escape")
    browser.until(lambda: not browser.find("#detail").is_displayed())
    assert "task=" not in browser.driver.current_url
    open_fresh(browser, archive.url + "#sort=oldest")
    browser.find(".card").click()
    browser.until(lambda: browser.find("#d-pos").text == "1 of 4")
    assert browser.find("#d-name").text == "Gen-4 Turbo 202, neon city"  # made in 2024
    browser.keys("ArrowRight")
    browser.until(lambda: browser.find("#d-pos").text == "2 of 4")
    browser.keys("ArrowLeft")
    browser.until(lambda: browser.find("#d-pos").text == "1 of 4")
    owl = archive.folder("owl")
    open_fresh(browser, archive.url + f"#task={owl}")
    browser.until(lambda: browser.find_all("#detail table.options th"))
    keys = [e.text for e in browser.find_all("#detail table.options th")]
    assert keys == ["seed", "gen2Options.textPrompt", "gen2Options.mode"]


def test_a_hostile_prompt_runs_nothing_and_reads_as_written(
    archive: Archive, browser: Browser
) -> None:
    """Markup and javascript: URLs in a name or prompt are shown literally: no alert, no
    element injected, no link made, in the card and in the detail view."""
    open_fresh(browser, archive.url + "#q=javascript")
    wait_count(browser, 1)
    assert browser.find(".card .prompt").get_attribute("textContent") == HOSTILE_PROMPT
    assert browser.find(".card .name").get_attribute("textContent") == HOSTILE_NAME
    browser.find(".card").click()
    browser.until(lambda: browser.find_all("#detail td.sha"))
    assert browser.find("#detail pre.prompt").get_attribute("textContent") == HOSTILE_PROMPT
    assert browser.find("#d-name").get_attribute("textContent") == HOSTILE_NAME
    assert browser.alert_text() is None
    assert browser.js("return window.pwned") is None
    assert browser.find_all("img[src=x], img[src=y], b, #detail a[href^=javascript]") == []
    hrefs = browser.js("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    assert all(not h.lower().startswith("javascript:") for h in hrefs)
    scripts = browser.js("return [...document.scripts].map(s => s.getAttribute('src') || 'inline')")
    assert all(s.startswith("gallery/") for s in scripts), scripts


def test_the_page_requests_nothing_outside_the_archive(archive: Archive, browser: Browser) -> None:
    """Loading, hovering and opening a detail view fetch only files inside the archive folder."""
    browser.requested_urls()
    open_fresh(browser, archive.url)
    browser.hover(browser.find(".card"))
    browser.until(lambda: browser.js("const v = document.querySelector('.card video');"
                                     " return v && v.currentTime > 0"))  # fmt: skip
    browser.find(".card").click()
    browser.until(lambda: browser.find_all("#detail td.sha"))
    browser.until(lambda: browser.js("return document.querySelector('#detail video').readyState"))
    # data: URLs are Chromium's own icons (the date picker, the video controls): nothing is
    # fetched, and the page's CSP would refuse any data: image of its own.
    urls = [u for u in browser.requested_urls() if u != "about:blank" and not u.startswith("data:")]
    inside = archive.root.resolve().as_uri() + "/"
    assert any("/gallery/detail/" in u for u in urls) and any(".mp4" in u for u in urls)
    assert [u for u in urls if not u.startswith(inside)] == []
    assert browser.console_errors() == []


def test_100000_entries_load_and_show_their_first_cards(browser: Browser, tmp_path: Path) -> None:
    """A gallery of 100,000 tasks draws its first cards, keeps only a screenful in the page,
    and reaches the last task when scrolled to the end."""
    synthetic.fill(tmp_path, 100_000, distinct=1000)

    async def build() -> gallery.Built:
        async with open_catalog(Config(output_dir=tmp_path), Access.WRITE) as catalog:
            return await gallery.build(tmp_path, catalog, now="2025-01-01T00:00:00+00:00")

    built = asyncio.run(build())
    assert built.tasks == 100_000
    browser.open(built.index.as_uri(), ready=False)
    browser.until(lambda: browser.js("return document.documentElement.dataset.ready"))
    assert len(browser.find_all(".card")) > 0
    browser.until(lambda: browser.js("return document.documentElement.dataset.loaded"), 60)
    assert count(browser) == 100_000
    assert 0 < len(browser.find_all(".card")) < 200
    browser.js("window.scrollTo(0, document.body.scrollHeight)")
    browser.until(lambda: browser.js(
        "return [...document.querySelectorAll('.card')].some(c => c.dataset.i === '99999')"
    ))  # fmt: skip
    assert len(browser.find_all(".card")) < 200


def test_longest_first_and_the_month_chart(archive: Archive, browser: Browser) -> None:
    """ "longest" puts the 3 s video first; the chart has a bar per month from the oldest task
    on, and clicking one filters the cards to that month."""
    open_fresh(browser, archive.url)
    browser.choose("#sort", "longest")
    browser.until(lambda: browser.find(".card .name").text == "Gen-2 303, an owl")
    assert "sort=longest" in browser.driver.current_url
    titles = [t.get_attribute("textContent") for t in browser.find_all("#chart rect title")]
    assert titles[0] == "2024-03: 1 generation" and len(titles) >= 12
    assert sum(int(t.split(": ")[1].split()[0]) for t in titles) == 6  # every task, failed too
    browser.find("#chart rect").click()
    wait_count(browser, 1)
    assert browser.find("#from").get_attribute("value") == "2024-03-01"
    assert browser.find("#to").get_attribute("value") == "2024-03-31"
