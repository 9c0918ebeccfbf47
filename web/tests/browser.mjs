// browser.mjs — headless Chromium for the browser tests: Debian's chromium driven by
// playwright-core (which never downloads a browser), plus the page helpers the tests share.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { ARTIFACTS } from './cluster.mjs';

const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchBrowser() {
  if (!existsSync(EXECUTABLE)) {
    throw new Error(`${EXECUTABLE} is missing: apt-get install -y chromium (or set CHROMIUM)`);
  }
  return chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
}

/**
 * A page in a context of its own (its own session storage), with console errors and CSP
 * violations collected in `page.problems`.
 */
export async function openPage(browser, url, { width = 1100, height = 760 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.problems.push(message.text());
  });
  page.on('pageerror', (error) => page.problems.push(String(error)));
  await page.goto(url);
  return page;
}

export async function screenshot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Registers through the form, with the keyboard only. */
export async function register(page, username, password = 'correct horse battery') {
  await page.locator('#auth-username').fill(username);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Tab'); // Log in
  await page.keyboard.press('Tab'); // Register
  await page.keyboard.press('Enter');
  await page.locator('#chat-view').waitFor({ state: 'visible' });
}

/** Types a message and sends it with Enter. */
export async function sendMessage(page, body) {
  await page.locator('#composer-input').fill(body);
  await page.locator('#composer-input').press('Enter');
}

/** The stored messages on the page, in DOM order: `[{seq, user, body}]`. */
export function shownMessages(page) {
  return page.$$eval('#messages .message', (items) => items.map((item) => ({
    seq: item.dataset.seq === undefined ? null : Number(item.dataset.seq),
    user: item.querySelector('.author').textContent,
    body: item.querySelector('.body').textContent,
  })));
}

/** Waits until the page shows `count` messages, none of them pending. */
export async function waitForMessages(page, count, timeout = 15_000) {
  await page.waitForFunction((n) => {
    const items = document.querySelectorAll('#messages .message');
    const stored = document.querySelectorAll('#messages .message[data-seq]');
    return items.length === n && stored.length === n;
  }, count, { timeout });
}

/** The node the page is connected to (from `welcome`), once connected. */
export async function connectedNode(page, timeout = 15_000) {
  const status = page.locator('#status[data-state="open"]');
  await status.waitFor({ timeout });
  return status.getAttribute('data-node');
}
