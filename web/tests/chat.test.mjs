// chat.test.mjs — the demo page in headless Chromium against two real nodes (real PostgreSQL and
// Redis): chat across nodes both ways, SIGKILL of one node with the page moving to the other and
// showing every message exactly once, then history scroll-back, search, keyboard use and phone
// width. Screenshots go to test-artifacts/web/.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  connectedNode, launchBrowser, openPage, register, screenshot, sendMessage, shownMessages,
  waitForMessages,
} from './browser.mjs';
import { startCluster } from './cluster.mjs';

let cluster;
let browser;

before(async () => {
  cluster = await startCluster();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

async function waitForNode(page, node, timeout = 20_000) {
  await page.waitForFunction(
    (id) => {
      const status = document.getElementById('status');
      return status.dataset.state === 'open' && status.dataset.node === id;
    },
    node,
    { timeout },
  );
}

/** Every message exactly once: seqs 1..n in order, with these bodies by these users. */
function assertExactlyOnce(shown, expected, who) {
  assert.deepEqual(
    shown.map((m) => m.seq),
    expected.map((_, i) => i + 1),
    `${who}: seqs 1..${expected.length}, each once, in order`,
  );
  assert.deepEqual(
    shown.map((m) => `${m.user}: ${m.body}`),
    expected,
    `${who}: the bodies, each once`,
  );
}

test('two pages on two nodes chat both ways; after SIGKILL of one node nothing is lost or doubled', { timeout: 120_000 }, async () => {
  // Alice sticks to node-a (and falls back to node-b); Bob sticks to node-b.
  const alice = await openPage(browser, `${cluster.url}/?ws=/n/0/ws,/n/1/ws`);
  const bob = await openPage(browser, `${cluster.url}/?ws=/n/1/ws,/n/0/ws`);

  await register(alice, 'alice');
  assert.equal(await connectedNode(alice), 'node-a');
  await alice.locator('#room-name').fill('general');
  await alice.locator('#room-name').press('Enter');
  await alice.locator('#room-list button[aria-current="true"]').filter({ hasText: 'general' }).waitFor();

  await register(bob, 'bob');
  assert.equal(await connectedNode(bob), 'node-b');
  await bob.locator('#room-list button[aria-current="true"]').filter({ hasText: 'general' }).waitFor();
  await alice.locator('#presence-list li', { hasText: 'bob' }).waitFor();

  const expected = [];
  for (let i = 1; i <= 3; i += 1) {
    await sendMessage(alice, `hello from alice ${i}`);
    expected.push(`alice: hello from alice ${i}`);
    await waitForMessages(bob, expected.length);
    await sendMessage(bob, `reply from bob ${i}`);
    expected.push(`bob: reply from bob ${i}`);
    await waitForMessages(alice, expected.length);
  }
  await waitForMessages(bob, expected.length);
  assertExactlyOnce(await shownMessages(alice), expected, 'alice before the kill');
  assertExactlyOnce(await shownMessages(bob), expected, 'bob before the kill');

  // Typing indicators cross nodes too.
  await bob.locator('#composer-input').pressSequentially('typing…');
  await alice.locator('#typing', { hasText: 'bob is typing' }).waitFor();
  await bob.locator('#composer-input').fill('');
  await screenshot(alice, 'two-nodes-alice');
  await screenshot(bob, 'two-nodes-bob');

  // Kill node-a; keep Alice's page off node-b until Bob has sent more, so that her rejoin must
  // replay them (`since`), and let her send while she has no connection (the pending queue).
  cluster.front.hold(1);
  await cluster.node('node-a').stop('SIGKILL');
  await alice.locator('#status[data-state="reconnecting"], #status[data-state="connecting"]').waitFor();
  for (let i = 1; i <= 3; i += 1) {
    await sendMessage(bob, `bob while alice is away ${i}`);
    expected.push(`bob: bob while alice is away ${i}`);
  }
  await sendMessage(alice, 'alice typed this offline');
  await waitForMessages(bob, expected.length);
  assert.equal(
    (await shownMessages(alice)).filter((m) => m.seq === null).length,
    1,
    'the offline message shows once, as pending',
  );
  cluster.front.release(1);

  await waitForNode(alice, 'node-b');
  expected.push('alice: alice typed this offline');
  await waitForMessages(alice, expected.length);
  await waitForMessages(bob, expected.length);

  // And live traffic after the move, both ways.
  await sendMessage(bob, 'welcome to node-b');
  expected.push('bob: welcome to node-b');
  await waitForMessages(alice, expected.length);
  await sendMessage(alice, 'thanks, all here');
  expected.push('alice: thanks, all here');
  await waitForMessages(alice, expected.length);
  await waitForMessages(bob, expected.length);

  // Nothing doubled: let any straggling replay or retry arrive, then count again.
  await alice.waitForTimeout(1500);
  assertExactlyOnce(await shownMessages(alice), expected, 'alice after the move');
  assertExactlyOnce(await shownMessages(bob), expected, 'bob after the move');
  await alice.locator('#presence-list li', { hasText: 'bob' }).waitFor();
  await screenshot(alice, 'after-failover-alice');
  await screenshot(bob, 'after-failover-bob');

  // A few WebSocket failures are expected in the console while node-a is down; nothing else.
  for (const page of [alice, bob]) {
    const unexpected = page.problems.filter((p) => !/WebSocket connection .* failed/.test(p));
    assert.deepEqual(unexpected, [], 'no script errors and no CSP violations');
  }
  await alice.context().close();
  await bob.context().close();
});

test('phone width, keyboard only: history scroll-back, search and no sideways scrolling', { timeout: 120_000 }, async () => {
  const carol = await openPage(browser, `${cluster.url}/?ws=/n/1/ws`, { width: 390, height: 844 });
  await register(carol, 'carol');
  await carol.locator('#room-list button[aria-current="true"]').filter({ hasText: 'general' }).waitFor();
  const before = (await shownMessages(carol)).length;
  assert.ok(before > 0, 'the room opens with its recent history');

  // Sixty more, typed and sent with Enter (some will meet the rate limit and be retried).
  for (let i = 1; i <= 60; i += 1) await sendMessage(carol, `carol note ${i}`);
  const total = before + 60;
  await waitForMessages(carol, total, 30_000);

  // Reload: the page shows the newest 50; "Load older" brings back the rest.
  await carol.reload();
  await carol.locator('#status[data-state="open"]').waitFor();
  await waitForMessages(carol, 50);
  await carol.locator('#older').focus();
  await carol.keyboard.press('Enter');
  await waitForMessages(carol, total);
  const shown = await shownMessages(carol);
  assert.deepEqual(shown.map((m) => m.seq), shown.map((_, i) => i + 1), 'every seq once, in order');
  const notes = shown.filter((m) => m.body.startsWith('carol note ')).map((m) => m.body).sort();
  const typed = Array.from({ length: 60 }, (_, i) => `carol note ${i + 1}`).sort();
  assert.deepEqual(notes, typed, 'each of the 60 stored and shown once');
  assert.equal(await carol.locator('#older').isDisabled(), true, 'nothing older left');

  // Every control has a label; keyboard focus is visible.
  const unlabeled = await carol.$$eval('input, textarea', (fields) =>
    fields.filter((f) => f.labels.length === 0).map((f) => f.id));
  assert.deepEqual(unlabeled, []);
  await carol.locator('#search-input').focus();
  await carol.keyboard.press('Shift+Tab');
  await carol.keyboard.press('Tab');
  const outline = await carol.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'focus is visible');

  // Search answers with hits or, where it is off, says so.
  await carol.locator('#search-input').fill('carol note');
  await carol.keyboard.press('Enter');
  const results = carol.locator('#search-results');
  await results.locator('p:not(:has-text("Searching"))').first().waitFor();
  const text = await results.textContent();
  assert.match(text, /not available on this server|#\d+ carol: carol note/);

  const overflow = await carol.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at phone width (${overflow}px too wide)`);
  await screenshot(carol, 'phone');
  assert.deepEqual(carol.problems, []);
  await carol.context().close();
});

test('the client library on its own: acks, duplicate client_msg_id, errors, ping', { timeout: 60_000 }, async () => {
  const page = await openPage(browser, `${cluster.url}/`);
  await register(page, 'dave');
  const result = await page.evaluate(async () => {
    const { BosarClient } = await import('/bosar-client.js');
    const token = JSON.parse(sessionStorage.getItem('bosar.session')).token;
    const client = new BosarClient({ urls: '/n/1/ws', token });
    client.connect();
    const joined = await client.join('general');
    const first = await client.send('general', 'once only', { clientMsgId: 'dave-1' });
    const again = await client.send('general', 'once only', { clientMsgId: 'dave-1' });
    const notJoined = await client.send('elsewhere', 'x').catch((e) => e.code);
    const missing = await client.join('no-such-room').catch((e) => e.code);
    const rtt = await client.ping();
    const history = await client.history('general', { after: first.seq - 1, limit: 5 });
    client.close();
    return { joined, first, again, notJoined, missing, rtt, history, state: client.state };
  });
  assert.equal(result.first.seq, result.joined.last_seq + 1);
  assert.equal(result.again.seq, result.first.seq, 'a repeated client_msg_id gets the original ack');
  assert.equal(result.again.id, result.first.id);
  assert.equal(result.notJoined, 'not_joined');
  assert.equal(result.missing, 'not_found');
  assert.ok(result.rtt >= 0);
  assert.deepEqual(result.history.map((m) => m.body), ['once only'], 'stored once');
  assert.equal(result.state, 'closed');
  await page.context().close();
});

test('a silent connection is found by the ping heartbeat and replaced', { timeout: 60_000 }, async () => {
  const page = await openPage(browser, `${cluster.url}/`);
  await register(page, 'erin');
  await page.evaluate(async () => {
    const { BosarClient } = await import('/bosar-client.js');
    const token = JSON.parse(sessionStorage.getItem('bosar.session')).token;
    const client = new BosarClient({ urls: '/n/1/ws', token, pingIntervalMs: 300, pingTimeoutMs: 700 });
    window.states = [];
    client.on('state', ({ state }) => window.states.push(state));
    client.connect();
    await client.join('general');
    window.heartbeatClient = client;
  });
  // Freeze every open connection to node-b: nothing is closed, nothing gets through.
  cluster.front.freeze(1);
  await page.waitForFunction(
    () => window.states.includes('reconnecting')
      && window.states.lastIndexOf('open') > window.states.indexOf('reconnecting'),
    null,
    { timeout: 15_000 },
  );
  const ack = await page.evaluate(() => window.heartbeatClient.send('general', 'after the heartbeat'));
  assert.ok(ack.seq > 0);
  await page.evaluate(() => window.heartbeatClient.close());
  await page.context().close();
});
