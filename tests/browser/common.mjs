// Launches Debian's Chromium the way this machine allows it: headless, no
// sandbox (root), and no background networking (the network is closed).
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Runs `steps` with a fresh page; on failure saves `<shots>/failure-<name>.png`. */
export async function withPage(name, shots, options, steps) {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
    const page = await context.newPage();
    try {
      await steps(page);
    } catch (error) {
      await page.screenshot({ path: `${shots}/failure-${name}.png`, fullPage: true }).catch(() => {});
      throw error;
    }
  } finally {
    await browser.close();
  }
}
