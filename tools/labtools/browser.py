"""A real browser for the lab's pages: Debian's headless Chromium, driven by Selenium through the
chromedriver of the same package (``scripts/install-browser.sh`` installs both; ``make test``
and ``make screenshots`` run it). Nothing is downloaded: Selenium is given the driver's path.
The page tests (tests/integration/test_pages.py) and ``make screenshots`` use it.

    with Browser() as browser:
        seen = browser.open(page, width=375, shot=ARTIFACTS / "ladder-375.png")
        assert seen.console_errors == [] and seen.fetched == []
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from labstack import ROOT
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ARTIFACTS = ROOT / "artifacts" / "pages"  # screenshots, kept after the run (CI uploads them)
PAGE_LOAD_S = 30
# Debian's chromium first; a hosted CI runner has Google's Chrome and its chromedriver instead.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Every text element's box, and the pairs that overlap (by more than a pixel), in one pass:
# sorted by top, each box compared with the boxes that start above its bottom.
OVERLAPS_JS = """
const selector = arguments[0];
const boxes = Array.from(document.querySelectorAll(selector)).map((el) => {
  const r = el.getBoundingClientRect();
  return {text: el.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
          svg: el.ownerSVGElement ? Array.from(document.querySelectorAll('svg'))
            .indexOf(el.ownerSVGElement) : -1};
}).filter((b) => b.right > b.left && b.bottom > b.top);
boxes.sort((a, b) => a.top - b.top);
const overlaps = [];
for (let i = 0; i < boxes.length; i++) {
  for (let j = i + 1; j < boxes.length && boxes[j].top < boxes[i].bottom - 1; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.svg === b.svg && a.left < b.right - 1 && b.left < a.right - 1) {
      overlaps.push([a.text, b.text]);
    }
  }
}
return {count: boxes.length, overlaps: overlaps.slice(0, 20)};
"""

CLIPPED_JS = """
const out = [];
for (const svg of document.querySelectorAll('svg')) {
  const frame = svg.getBoundingClientRect();
  for (const el of svg.querySelectorAll('text')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.left < frame.left - 1 || r.right > frame.right + 1)) {
      out.push(el.textContent);
    }
  }
}
return out.slice(0, 20);
"""


@dataclass
class Seen:
    """What the browser saw of a page."""

    console_errors: list[str]
    fetched: list[str]  # every resource the page asked for beyond itself
    text: str  # the page's visible text
    texts: int  # text elements checked for overlap
    overlaps: list[list[str]]  # pairs of texts whose boxes overlap
    clipped: list[str]  # texts that stick out of their SVG
    width: int  # the page's layout width (px)
    counts: dict[str, int]  # elements matching each selector asked for


def chromium() -> tuple[str, str]:
    """Paths of chromium and its chromedriver, or a RuntimeError saying how to get them."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        raise RuntimeError(
            "chromium and chromedriver are needed here: scripts/install-browser.sh installs "
            "Debian's (make test and make screenshots run it)"
        )
    return browser, driver


class Browser:
    def __init__(self) -> None:
        browser, driver = chromium()
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in CI; the pages are the project's own files
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        self.driver.set_page_load_timeout(PAGE_LOAD_S)
        self.driver.set_script_timeout(PAGE_LOAD_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.driver.quit()

    def open(
        self,
        page: Path,
        width: int,
        shot: Path,
        counts: tuple[str, ...] = (),
        texts: str = "svg text",
    ) -> Seen:
        """Load ``page`` in a window ``width`` px wide, screenshot it (the whole page's height)
        to ``shot``, and report what was seen."""
        self.driver.set_window_size(width, 900)
        self.driver.get(page.resolve().as_uri())
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, min(max(height + 40, 600), 12000))
        shot.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(shot))
        logs: list[dict[str, Any]] = self.driver.get_log("browser")
        fetched = self.driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        boxes = self.driver.execute_script(OVERLAPS_JS, texts)
        return Seen(
            console_errors=[entry["message"] for entry in logs if entry["level"] == "SEVERE"],
            fetched=list(fetched),
            text=self.driver.execute_script("return document.body.innerText"),
            texts=int(boxes["count"]),
            overlaps=boxes["overlaps"],
            clipped=self.driver.execute_script(CLIPPED_JS),
            width=int(self.driver.execute_script("return document.documentElement.clientWidth")),
            counts={
                selector: int(
                    self.driver.execute_script(
                        "return document.querySelectorAll(arguments[0]).length", selector
                    )
                )
                for selector in counts
            },
        )

    def element_screenshot(self, page: Path, width: int, selector: str, shot: Path) -> None:
        """A screenshot of the first element matching ``selector`` on ``page``."""
        self.driver.set_window_size(width, 900)
        self.driver.get(page.resolve().as_uri())
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, min(max(height + 40, 600), 12000))
        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        shot.parent.mkdir(parents=True, exist_ok=True)
        element.screenshot(str(shot))

    def click_first(self, selector: str) -> str:
        """Click the first element matching ``selector``; the detail panel's text after."""
        self.driver.execute_script(
            "document.querySelector(arguments[0]).dispatchEvent("
            "new MouseEvent('click', {bubbles: true}))",
            selector,
        )
        return str(
            self.driver.execute_script("return document.getElementById('detail').textContent")
        )
