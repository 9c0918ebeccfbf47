// backoff.test.mjs — the client library's pure helpers, without a browser: reconnect delays
// (capped exponential with equal jitter) and client_msg_id generation.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, newClientMsgId } from '../bosar-client.js';

test('reconnect delays double per attempt, stay within [ceiling/2, ceiling] and are capped', () => {
  const low = () => 0;
  const high = () => 1;
  assert.equal(backoffDelay(0, 500, 15000, low), 250);
  assert.equal(backoffDelay(0, 500, 15000, high), 500);
  assert.equal(backoffDelay(3, 500, 15000, low), 2000);
  assert.equal(backoffDelay(3, 500, 15000, high), 4000);
  assert.equal(backoffDelay(10, 500, 15000, high), 15000);
  assert.equal(backoffDelay(1000, 500, 15000, low), 7500);
  for (let i = 0; i < 100; i += 1) {
    const delay = backoffDelay(2, 500, 15000);
    assert.ok(delay >= 1000 && delay <= 2000, String(delay));
  }
});

test('client_msg_ids are short, valid and distinct', () => {
  const ids = new Set(Array.from({ length: 1000 }, newClientMsgId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^c-[0-9a-f]{24}$/);
});
