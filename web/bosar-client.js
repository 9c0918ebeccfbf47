// bosar-client.js — the BoSar Chat client for browsers: a dependency-free ES module.
//
// One WebSocket at a time, kept alive: reconnection with exponential backoff and jitter after any
// close (rotating through the node URLs it was given), every joined room rejoined with `since` =
// the last seq seen, a send queue retried with the same `client_msg_id` until acknowledged,
// promises for replies matched by `ref`, and an application-level heartbeat. Messages reach the
// `message` listeners once each, in seq order: anything at or below a room's last seen seq is
// dropped. Types are in bosar-client.d.ts; the protocol is in docs/protocol.md.

const DEFAULTS = Object.freeze({
  backoffInitialMs: 500,
  backoffMaxMs: 15000,
  connectTimeoutMs: 10000,
  pingIntervalMs: 20000,
  pingTimeoutMs: 10000,
  requestTimeoutMs: 15000,
  typingIntervalMs: 2000,
});

/** Error codes worth retrying a send for (with the same client_msg_id). */
const RETRYABLE = new Set(['unavailable', 'rate_limited']);

/** An error answered by the server (`code` as in the protocol) or raised by the client. */
export class BosarError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'BosarError';
    this.code = code;
  }
}

/** Backoff for the given attempt (0, 1, 2, …): capped exponential, with "equal jitter". */
export function backoffDelay(attempt, initialMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A fresh client_msg_id; getRandomValues also works outside secure contexts. */
export function newClientMsgId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class BosarClient {
  #opts;
  #urls;
  #urlIndex = 0;
  #token;
  #ws = null;
  #state = 'idle';
  #attempt = 0;
  #user = null;
  #node = null;
  #nextRef = 0;
  #listeners = new Map();
  #rooms = new Map(); // room -> { lastSeq, joined, since, waiters }
  #requests = new Map(); // ref -> { resolve, reject, timer }
  #joinRefs = new Map(); // ref -> room
  #outbox = new Map(); // client_msg_id -> pending send, in the order sent
  #sendRefs = new Map(); // ref -> client_msg_id
  #openWaiters = [];
  #timers = { reconnect: null, connect: null, ping: null, pong: null };
  #typingAt = new Map();

  /**
   * @param {object} options
   * @param {string|string[]} options.urls WebSocket URLs (`ws://…/ws`, or paths like `/ws`
   *   resolved against the page); tried in turn, one further on every reconnect.
   * @param {string|(() => string|Promise<string>)} options.token the JWT, or a function giving it
   *   (called before every connection attempt, so it can refresh an expiring token).
   */
  constructor(options) {
    const { urls, token, WebSocket: Impl, ...rest } = options || {};
    this.#urls = (Array.isArray(urls) ? urls : [urls || '/ws']).filter(Boolean);
    if (this.#urls.length === 0) throw new TypeError('BosarClient: no URL');
    this.#token = token;
    this.#opts = { ...DEFAULTS, ...rest, WebSocket: Impl || globalThis.WebSocket };
  }

  // ------------------------------------------------------------------ public API

  /** `idle`, `connecting`, `open`, `reconnecting`, `auth_failed` or `closed`. */
  get state() { return this.#state; }
  /** The user name from the last `welcome`. */
  get user() { return this.#user; }
  /** The node that the current (or last) connection reached. */
  get node() { return this.#node; }
  /** Sends not yet acknowledged. */
  get pendingCount() { return this.#outbox.size; }
  /** The last seq seen in a room (undefined before the first). */
  lastSeq(room) { return this.#rooms.get(room)?.lastSeq ?? undefined; }
  /** The rooms this client keeps joined. */
  get rooms() { return [...this.#rooms.keys()]; }

  /** Replaces the token used from the next connection attempt on. */
  setToken(token) { this.#token = token; }

  /** Registers a listener; returns a function that removes it. */
  on(event, listener) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(listener);
    return () => this.#listeners.get(event)?.delete(listener);
  }

  /** Opens the connection (again, after `close()` or an auth failure). */
  connect() {
    if (this.#state === 'connecting' || this.#state === 'open') return;
    clearTimeout(this.#timers.reconnect);
    this.#attempt = 0;
    this.#open();
  }

  /** Closes for good: nothing reconnects; unanswered requests and sends are rejected. */
  close() {
    this.#setState('closed');
    clearTimeout(this.#timers.reconnect);
    const ws = this.#ws;
    if (ws) {
      this.#detach(ws);
      ws.close(1000, 'client closed');
    }
    this.#connectionLost();
    for (const entry of this.#outbox.values()) {
      entry.reject(new BosarError('closed', 'the client was closed'));
    }
    this.#outbox.clear();
    for (const waiter of this.#openWaiters.splice(0)) waiter.reject(new BosarError('closed'));
  }

  /**
   * Joins a room and keeps it joined across reconnects. Resolves with the `joined` frame.
   * `since` asks for every message after that seq first (the default is the last seq seen).
   */
  join(room, { since } = {}) {
    let entry = this.#rooms.get(room);
    if (!entry) {
      entry = { lastSeq: null, joined: false, since: null, waiters: [], retryTimer: null, retries: 0 };
      this.#rooms.set(room, entry);
    }
    if (since !== undefined && since !== null) entry.lastSeq = since;
    const promise = new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
    if (this.#state === 'open') this.#sendJoin(room);
    return promise;
  }

  /** Leaves a room; its unsent messages are rejected. */
  leave(room) {
    clearTimeout(this.#rooms.get(room)?.retryTimer);
    this.#rooms.delete(room);
    for (const [id, entry] of this.#outbox) {
      if (entry.room !== room) continue;
      this.#outbox.delete(id);
      entry.reject(new BosarError('not_joined', `left ${room}`));
    }
    if (this.#state !== 'open') return Promise.resolve({ type: 'left', room });
    return this.#request({ type: 'leave', room });
  }

  /**
   * Sends a message; resolves with its `ack` once it is committed. Kept and retried with the
   * same `client_msg_id` across reconnects and `unavailable` answers, so it is stored once.
   * The promise carries `clientMsgId`, for showing the message as pending.
   */
  send(room, body, { clientMsgId } = {}) {
    const id = clientMsgId || newClientMsgId();
    let entry;
    const promise = new Promise((resolve, reject) => {
      entry = { room, body, id, ref: null, resolve, reject };
    });
    promise.clientMsgId = id;
    if (!this.#rooms.has(room)) {
      entry.reject(new BosarError('not_joined', `join ${room} before sending to it`));
      return promise;
    }
    const existing = this.#outbox.get(id);
    if (existing) return existing.promise;
    entry.promise = promise;
    this.#outbox.set(id, entry);
    this.#typingAt.delete(room); // receivers clear the indicator on a message: typing anew shows again
    if (this.#canTransmit(room)) this.#transmit(entry);
    return promise;
  }

  /** A page of history (ascending): `before` a seq, or `after` one. */
  async history(room, { before, after, limit } = {}) {
    const reply = await this.#request({ type: 'history', room, before, after, limit });
    return reply.messages;
  }

  /** Semantic search in a room; rejects with code `unavailable` where search is off. */
  async search(room, query, { limit } = {}) {
    const reply = await this.#request({ type: 'search', room, query, limit });
    return reply.hits;
  }

  /**
   * Tells the room's other members that this user is typing: at most once every 2 s per room,
   * and again at once after a send.
   */
  typing(room) {
    const now = Date.now();
    if (!this.#canSend(room) || now - (this.#typingAt.get(room) || 0) < this.#opts.typingIntervalMs) {
      return;
    }
    this.#typingAt.set(room, now);
    this.#write({ type: 'typing', room });
  }

  /** An application-level round trip; resolves with the time it took in ms. */
  async ping() {
    const started = Date.now();
    await this.#request({ type: 'ping' });
    return Date.now() - started;
  }

  // ------------------------------------------------------------------ connection

  async #open() {
    this.#setState('connecting');
    const url = this.#urls[this.#urlIndex % this.#urls.length];
    let target;
    try {
      const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
      target = this.#resolveUrl(url, token);
    } catch (error) {
      this.#emit('error', { code: 'token', message: String(error?.message || error) });
      this.#scheduleReconnect();
      return;
    }
    if (this.#state !== 'connecting') return; // closed while the token was fetched
    let ws;
    try {
      ws = new this.#opts.WebSocket(target);
    } catch (error) {
      this.#emit('error', { code: 'connect', message: String(error?.message || error) });
      this.#scheduleReconnect();
      return;
    }
    this.#ws = ws;
    ws.onmessage = (event) => this.#onFrame(ws, event.data);
    ws.onclose = (event) => this.#onClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows
    this.#timers.connect = setTimeout(
      () => this.#abandon(ws, 'connect timeout'),
      this.#opts.connectTimeoutMs,
    );
  }

  #resolveUrl(url, token) {
    const base = globalThis.location?.href;
    const parsed = base ? new URL(url, base) : new URL(url);
    if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
    if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
    if (token) parsed.searchParams.set('token', token);
    return parsed.toString();
  }

  /** Gives up on a socket that stopped answering: handled as closed at once. */
  #abandon(ws, reason) {
    if (ws !== this.#ws) return;
    this.#detach(ws);
    try { ws.close(4000, reason); } catch { /* already closing */ }
    this.#onClose(ws, 4000, reason, true);
  }

  #detach(ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
  }

  #onClose(ws, code, reason, detached = false) {
    if (ws !== this.#ws) return;
    if (!detached) this.#detach(ws);
    this.#ws = null;
    this.#connectionLost();
    this.#emit('close', { code, reason });
    if (this.#state === 'closed') return;
    if (code === 4001) {
      this.#setState('auth_failed');
      this.#emit('auth_error', { code, reason });
      return;
    }
    this.#urlIndex += 1; // a failed sticky session: try the next node
    this.#scheduleReconnect();
  }

  /** What every end of a connection undoes: timers, joins, in-flight replies. */
  #connectionLost() {
    for (const name of ['connect', 'ping', 'pong']) {
      clearTimeout(this.#timers[name]);
      clearInterval(this.#timers[name]);
      this.#timers[name] = null;
    }
    for (const room of this.#rooms.values()) {
      room.joined = false;
      clearTimeout(room.retryTimer);
      room.retryTimer = null;
    }
    this.#joinRefs.clear();
    this.#sendRefs.clear();
    for (const entry of this.#outbox.values()) entry.ref = null;
    for (const request of this.#requests.values()) {
      clearTimeout(request.timer);
      request.reject(new BosarError('disconnected', 'the connection closed before the reply'));
    }
    this.#requests.clear();
  }

  #scheduleReconnect() {
    const delay = backoffDelay(this.#attempt, this.#opts.backoffInitialMs, this.#opts.backoffMaxMs);
    this.#attempt += 1;
    this.#setState('reconnecting', { delay, attempt: this.#attempt });
    clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = setTimeout(() => {
      if (this.#state === 'reconnecting') this.#open();
    }, delay);
  }

  /** A `ping` every interval; one unanswered for `pingTimeoutMs` abandons the socket. */
  #startHeartbeat(ws) {
    this.#timers.ping = setInterval(() => {
      if (ws !== this.#ws || this.#timers.pong) return; // the last ping is still out
      const ref = this.#ref();
      this.#requests.set(ref, {
        resolve: () => {
          clearTimeout(this.#timers.pong);
          this.#timers.pong = null;
        },
        reject: () => {},
        timer: null,
      });
      this.#timers.pong = setTimeout(() => {
        this.#requests.delete(ref);
        this.#abandon(ws, 'heartbeat timeout');
      }, this.#opts.pingTimeoutMs);
      this.#write({ type: 'ping', ref });
    }, this.#opts.pingIntervalMs);
  }

  // ------------------------------------------------------------------ frames in

  #onFrame(ws, data) {
    if (ws !== this.#ws || typeof data !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'welcome': return this.#onWelcome(ws, frame);
      case 'joined': return this.#onJoined(frame);
      case 'message': return this.#onMessage(frame);
      case 'ack': return this.#onAck(frame);
      case 'error': return this.#onError(frame);
      case 'presence':
      case 'typing':
        return this.#emit(frame.type, frame);
      default: {
        if (frame.type === 'left') this.#emit('left', frame);
        const request = frame.ref && this.#requests.get(frame.ref);
        if (request) {
          this.#requests.delete(frame.ref);
          clearTimeout(request.timer);
          request.resolve(frame);
        }
      }
    }
  }

  #onWelcome(ws, frame) {
    clearTimeout(this.#timers.connect);
    this.#attempt = 0;
    this.#user = frame.user;
    this.#node = frame.node;
    this.#setState('open', { node: frame.node, user: frame.user });
    this.#emit('welcome', frame);
    this.#startHeartbeat(ws);
    for (const room of this.#rooms.keys()) this.#sendJoin(room);
    for (const waiter of this.#openWaiters.splice(0)) waiter.resolve();
  }

  #sendJoin(room) {
    const entry = this.#rooms.get(room);
    const ref = this.#ref();
    this.#joinRefs.set(ref, room);
    entry.since = entry.lastSeq;
    const frame = { type: 'join', room, ref };
    if (entry.since !== null) frame.since = entry.since;
    this.#write(frame);
  }

  #onJoined(frame) {
    const room = this.#joinRefs.get(frame.ref) ?? frame.room;
    this.#joinRefs.delete(frame.ref);
    const entry = this.#rooms.get(room);
    if (!entry) return;
    entry.joined = true;
    // Without `since` nothing older follows: live messages start after last_seq.
    if (entry.since === null && entry.lastSeq === null) entry.lastSeq = frame.last_seq;
    this.#emit('joined', { ...frame, resumed: entry.since !== null });
    for (const waiter of entry.waiters.splice(0)) waiter.resolve(frame);
    this.#flush(room);
  }

  /** Sends, in the order they were made, the room's sends that are not on their way. */
  #flush(room) {
    if (!this.#canTransmit(room)) return;
    for (const pending of this.#outbox.values()) {
      if (pending.room === room && !pending.ref) this.#transmit(pending);
    }
  }

  #onMessage(frame) {
    const entry = this.#rooms.get(frame.room);
    if (!entry) return;
    if (entry.lastSeq !== null && frame.seq <= entry.lastSeq) return; // seen already
    entry.lastSeq = frame.seq;
    // Our own message, replayed after a reconnect that lost its ack: it is stored.
    const pending = frame.client_msg_id && this.#outbox.get(frame.client_msg_id);
    if (pending && frame.user === this.#user && pending.room === frame.room) {
      this.#settleSend(pending, {
        type: 'ack', room: frame.room, id: frame.id, seq: frame.seq, ts: frame.ts,
        client_msg_id: frame.client_msg_id,
      });
    }
    this.#emit('message', frame);
  }

  #onAck(frame) {
    const id = this.#sendRefs.get(frame.ref) ?? frame.client_msg_id;
    this.#sendRefs.delete(frame.ref);
    const pending = id && this.#outbox.get(id);
    if (pending) this.#settleSend(pending, frame);
  }

  #settleSend(pending, ack) {
    const room = this.#rooms.get(pending.room);
    if (room) room.retries = 0;
    this.#outbox.delete(pending.id);
    this.#emit('ack', ack);
    pending.resolve(ack);
  }

  #onError(frame) {
    this.#emit('error', frame);
    const ref = frame.ref;
    if (!ref) return;
    const error = new BosarError(frame.code, frame.message);
    const joinRoom = this.#joinRefs.get(ref);
    if (joinRoom !== undefined) {
      this.#joinRefs.delete(ref);
      const entry = this.#rooms.get(joinRoom);
      if (entry && frame.code === 'unavailable') {
        setTimeout(() => this.#state === 'open' && this.#rooms.has(joinRoom) && this.#sendJoin(joinRoom), 1000);
        return;
      }
      this.#rooms.delete(joinRoom);
      for (const waiter of entry?.waiters.splice(0) || []) waiter.reject(error);
      return;
    }
    const id = this.#sendRefs.get(ref);
    if (id !== undefined) {
      this.#sendRefs.delete(ref);
      const pending = this.#outbox.get(id);
      if (!pending) return;
      pending.ref = null;
      const room = this.#rooms.get(pending.room);
      if (RETRYABLE.has(frame.code) && room) {
        // Pause the room's sends, then resend what is waiting in order: later sends do not
        // overtake the refused one more than they already have.
        if (!room.retryTimer) {
          const delay = backoffDelay(room.retries++, this.#opts.backoffInitialMs, this.#opts.backoffMaxMs);
          room.retryTimer = setTimeout(() => {
            room.retryTimer = null;
            this.#flush(pending.room);
          }, delay);
        }
      } else {
        this.#outbox.delete(id);
        pending.reject(error);
      }
      return;
    }
    const request = this.#requests.get(ref);
    if (request) {
      this.#requests.delete(ref);
      clearTimeout(request.timer);
      request.reject(error);
    }
  }

  // ------------------------------------------------------------------ frames out

  #canSend(room) {
    return this.#state === 'open' && this.#rooms.get(room)?.joined === true;
  }

  /** Whether sends may go out now: joined, and not paused after a refusal. */
  #canTransmit(room) {
    return this.#canSend(room) && !this.#rooms.get(room).retryTimer;
  }

  #transmit(pending) {
    const ref = this.#ref();
    pending.ref = ref;
    this.#sendRefs.set(ref, pending.id);
    this.#write({ type: 'send', room: pending.room, body: pending.body, client_msg_id: pending.id, ref });
  }

  /** Sends a frame that has a reply, once connected; rejects on timeout or disconnect. */
  async #request(frame) {
    if (this.#state !== 'open') {
      if (this.#state === 'closed' || this.#state === 'auth_failed') {
        throw new BosarError('disconnected', 'not connected');
      }
      await new Promise((resolve, reject) => this.#openWaiters.push({ resolve, reject }));
    }
    const ref = this.#ref();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(ref);
        reject(new BosarError('timeout', `no reply to ${frame.type}`));
      }, this.#opts.requestTimeoutMs);
      this.#requests.set(ref, { resolve, reject, timer });
      this.#write({ ...frame, ref });
    });
  }

  #write(frame) {
    if (this.#ws && this.#ws.readyState === 1) this.#ws.send(JSON.stringify(frame));
  }

  #ref() {
    this.#nextRef += 1;
    return 'r' + this.#nextRef;
  }

  // ------------------------------------------------------------------ events

  #setState(state, detail = {}) {
    this.#state = state;
    this.#emit('state', { state, ...detail });
  }

  #emit(event, payload) {
    for (const listener of this.#listeners.get(event) || []) {
      try {
        listener(payload);
      } catch (error) {
        console.error(`bosar-client: a ${event} listener threw`, error);
      }
    }
  }
}
