import fs from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, driven through playwright-core (no browser download). */
export const CHROMIUM = process.env.BACKSTOP_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumArgs = ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Starts headless Chromium, or fails saying how to install it. */
export async function launchChromium(): Promise<Browser> {
  await fs.access(CHROMIUM).catch(() => {
    throw new Error(`No Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (scripts/setup.sh does), or set BACKSTOP_CHROMIUM.`);
  });
  return chromium.launch({ executablePath: CHROMIUM, args: chromiumArgs });
}
