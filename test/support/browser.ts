/// <reference lib="dom" />
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';

/**
 * A page in a new context whose script errors and console errors are collected in
 * `pageErrors` (a test ends by asserting it is empty). Chromium logs every 4xx answer as a
 * console error; the ones tests provoke are expected and not collected.
 */
export async function openPage(browser: Browser, options: BrowserContextOptions = {}): Promise<{ page: Page; pageErrors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) pageErrors.push(`console: ${message.text()}`);
  });
  return { page, pageErrors };
}

export interface LayoutProblems {
  /** The page is wider than the window. */
  pageScroll: { scroll: number; client: number } | null;
  /** Elements inside the page that scroll (or would be cut) sideways. */
  sideways: string[];
  /** Words split across two lines, outside the elements allowed to break anywhere (ids, file names, hashes, URLs). */
  brokenWords: string[];
}

/**
 * What a phone-sized window shows wrong in the page's main content: sideways scrolling, and
 * words cut in the middle. A word is a run of letters and digits; it is broken when its
 * characters lie on more than one line.
 */
export function layoutProblems(page: Page): Promise<LayoutProblems> {
  return page.evaluate(() => {
    const root = document.documentElement;
    const pageScroll = root.scrollWidth > root.clientWidth ? { scroll: root.scrollWidth, client: root.clientWidth } : null;
    const describe = (element: Element) =>
      `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}${element.className && typeof element.className === 'string' ? `.${element.className.trim().split(/\s+/).join('.')}` : ''}`;
    // Visually hidden helpers (clipped to nothing, for screen readers) are meant to overflow.
    const clipped = (element: Element) => {
      for (let at: Element | null = element; at && at !== document.body; at = at.parentElement) {
        if (getComputedStyle(at).clipPath !== 'none') return true;
      }
      return false;
    };
    const sideways: string[] = [];
    for (const element of document.querySelectorAll('main *')) {
      if (element.closest('svg, dialog:not([open])')) continue;
      const style = getComputedStyle(element);
      if (style.display === 'none' || style.visibility === 'hidden') continue;
      if (element.clientWidth <= 1 || clipped(element)) continue;
      if (element.scrollWidth > element.clientWidth + 1 && (style.overflowX === 'auto' || style.overflowX === 'scroll' || style.overflowX === 'hidden')) {
        sideways.push(`${describe(element)} (${element.scrollWidth} > ${element.clientWidth})`);
      }
      const box = element.getBoundingClientRect();
      if (box.width > 0 && box.right > root.clientWidth + 1 && !element.closest('.visually-hidden')) sideways.push(`${describe(element)} ends at ${Math.round(box.right)} px`);
    }
    const brokenWords: string[] = [];
    const walker = document.createTreeWalker(document.querySelector('main') ?? document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode() as Text | null; node; node = walker.nextNode() as Text | null) {
      const parent = node.parentElement;
      if (!parent || parent.closest('.wrap-anywhere, svg, .visually-hidden, dialog:not([open]), details:not([open]) > :not(summary)') || clipped(parent)) continue;
      for (const match of node.data.matchAll(/[\p{L}\p{N}]+/gu)) {
        if (match[0].length < 2) continue;
        const range = document.createRange();
        range.setStart(node, match.index!);
        range.setEnd(node, match.index! + match[0].length);
        const lines = new Set([...range.getClientRects()].filter((rect) => rect.width > 0).map((rect) => Math.round(rect.top)));
        if (lines.size > 1) brokenWords.push(`"${match[0]}" in ${describe(parent)}`);
      }
    }
    return { pageScroll, sideways: [...new Set(sideways)], brokenWords };
  });
}
