// app.js — the BoSar Chat demo page: sign-in, rooms, the message list, presence, typing and
// search, wired to one BosarClient. The WebSocket endpoints are `/ws` on this origin, or the
// same-origin paths listed in `?ws=/a/ws,/b/ws` (one per node, tried in turn on reconnect).

import { BosarClient } from '/bosar-client.js';
import * as api from '/api.js';
import { MessagesView } from '/messages-view.js';

const $ = (id) => document.getElementById(id);
const SESSION_KEY = 'bosar.session';
const TYPING_SHOWN_MS = 3000;
const HISTORY_PAGE = 50;

const app = {
  session: null, // { token, username }
  client: null,
  rooms: [],
  room: null,
  view: null,
  presence: new Set(),
  typists: new Map(), // user -> timer
};

// ---------------------------------------------------------------------- sign-in

function wsUrls() {
  const listed = new URLSearchParams(location.search).get('ws');
  const paths = (listed || '/ws').split(',').map((p) => p.trim());
  return paths.filter((p) => p.startsWith('/') && !p.startsWith('//'));
}

$('auth-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const action = event.submitter?.value || 'login';
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  $('auth-error').textContent = '';
  if (!$('auth-form').checkValidity()) {
    $('auth-error').textContent =
      'Usernames are 3–32 letters, digits, _ . or -; passwords at least 8 characters.';
    return;
  }
  try {
    const reply = action === 'register'
      ? await api.register(username, password)
      : await api.login(username, password);
    startSession({ token: reply.token, username: reply.user.username });
  } catch (error) {
    $('auth-error').textContent = error.code === 'unauthorized'
      ? 'Wrong username or password.'
      : error.code === 'conflict' ? 'That username is taken.' : error.message;
  }
});

$('logout').addEventListener('click', () => endSession());

function startSession(session) {
  app.session = session;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  $('auth-view').hidden = true;
  $('chat-view').hidden = false;
  $('logout').hidden = false;
  $('whoami').textContent = session.username;
  app.view = new MessagesView($('messages'), session.username);
  connect();
  refreshRooms().catch(showRoomError);
}

function endSession(message = '') {
  app.client?.close();
  app.client = null;
  app.session = null;
  app.room = null;
  sessionStorage.removeItem(SESSION_KEY);
  $('chat-view').hidden = true;
  $('auth-view').hidden = false;
  $('logout').hidden = true;
  $('whoami').textContent = '';
  setStatus('signed-out', 'Signed out');
  $('auth-error').textContent = message;
  $('auth-username').focus();
}

// ---------------------------------------------------------------------- connection

function connect() {
  const client = new BosarClient({ urls: wsUrls(), token: app.session.token });
  app.client = client;
  client.on('state', onState);
  client.on('message', (message) => {
    if (message.room !== app.room) return;
    app.view.add([message]);
    stopTyping(message.user); // their message is here: they stopped typing it
  });
  client.on('joined', (joined) => {
    if (joined.room !== app.room) return;
    app.presence = new Set(joined.presence);
    renderPresence();
  });
  client.on('presence', onPresence);
  client.on('typing', onTyping);
  client.on('auth_error', () => endSession('Your session has expired: please log in again.'));
  client.connect();
}

function onState({ state, node, delay }) {
  const texts = {
    connecting: 'Connecting…',
    open: `Connected to ${node}`,
    reconnecting: `Connection lost; reconnecting in ${((delay || 0) / 1000).toFixed(1)} s`,
    auth_failed: 'Signed out',
    closed: 'Signed out',
  };
  setStatus(state, texts[state] || state);
  if (state === 'open') $('status').dataset.node = node;
  const ready = state === 'open' && app.room !== null;
  $('composer-input').disabled = app.room === null;
  $('send').disabled = app.room === null;
  $('older').disabled = !ready || (app.view?.oldestSeq ?? 1) <= 1;
}

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

// ---------------------------------------------------------------------- rooms

async function refreshRooms() {
  app.rooms = await api.listRooms(app.session.token);
  renderRooms();
  if (!app.room && app.rooms.length > 0) {
    const wanted = decodeURIComponent(location.hash.slice(1));
    const room = app.rooms.find((r) => r.name === wanted) ||
      app.rooms.find((r) => r.name === 'general') || app.rooms[0];
    await selectRoom(room.name);
  }
}

function renderRooms() {
  const list = $('room-list');
  list.replaceChildren(...app.rooms.map((room) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = (room.private ? '🔒 ' : '# ') + room.name;
    button.dataset.room = room.name;
    if (room.name === app.room) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => selectRoom(room.name));
    item.append(button);
    return item;
  }));
}

$('room-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('room-error').textContent = '';
  const name = $('room-name').value.trim();
  if (!$('room-name').checkValidity()) {
    $('room-error').textContent = 'Lowercase letters, digits and _ . : - (start with a letter or digit).';
    return;
  }
  try {
    await api.createRoom(app.session.token, name, $('room-private').checked);
    $('room-name').value = '';
    await refreshRooms();
    await selectRoom(name);
  } catch (error) {
    showRoomError(error);
  }
});

function showRoomError(error) {
  $('room-error').textContent = error.code === 'conflict' ? 'That room exists already.' : error.message;
}

async function selectRoom(name) {
  if (name === app.room) return;
  const previous = app.room;
  app.room = name;
  location.hash = encodeURIComponent(name);
  $('room-title').textContent = `# ${name}`;
  app.view.reset();
  app.presence = new Set();
  renderPresence();
  clearTyping();
  $('search-results').replaceChildren();
  renderRooms();
  onState({ state: app.client.state, node: app.client.node });
  if (previous) app.client.leave(previous).catch(() => {});
  try {
    const joined = await app.client.join(name);
    if (app.room !== name) return;
    const page = await app.client.history(name, { before: joined.last_seq + 1, limit: HISTORY_PAGE });
    if (app.room !== name) return;
    app.view.add(page);
    $('older').disabled = page.length === 0 || page[0].seq <= 1;
  } catch (error) {
    notice(`Could not open ${name}: ${error.message}`);
  }
}

$('older').addEventListener('click', async () => {
  const room = app.room;
  const oldest = app.view.oldestSeq;
  if (!room || !oldest) return;
  $('older').disabled = true;
  try {
    const page = await app.client.history(room, { before: oldest, limit: HISTORY_PAGE });
    if (room !== app.room) return;
    app.view.add(page, { keepScroll: true });
    $('older').disabled = page.length === 0 || page[0].seq <= 1;
  } catch (error) {
    $('older').disabled = false;
    notice(`Could not load older messages: ${error.message}`);
  }
});

// ---------------------------------------------------------------------- sending

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  sendComposed();
});

$('composer-input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendComposed();
  }
});

$('composer-input').addEventListener('input', () => {
  if (app.room && $('composer-input').value.trim()) app.client.typing(app.room);
});

function sendComposed() {
  const input = $('composer-input');
  const body = input.value.trim();
  if (!body || !app.room) return;
  input.value = '';
  const room = app.room;
  const view = app.view;
  const sending = app.client.send(room, body);
  const id = sending.clientMsgId;
  view.addPending(id, body);
  sending
    .then((ack) => {
      if (app.room !== room) return;
      view.acked(id, { ...ack, user: app.session.username, body, room });
    })
    .catch((error) => view.failed(id, error.message));
}

// ---------------------------------------------------------------------- presence and typing

function onPresence(event) {
  if (event.room !== app.room) return;
  for (const user of event.joined) app.presence.add(user);
  for (const user of event.left) app.presence.delete(user);
  renderPresence();
}

function renderPresence() {
  $('presence-list').replaceChildren(...[...app.presence].sort().map((user) => {
    const item = document.createElement('li');
    item.textContent = user;
    return item;
  }));
}

function onTyping(event) {
  if (event.room !== app.room || event.user === app.session.username) return;
  clearTimeout(app.typists.get(event.user));
  app.typists.set(event.user, setTimeout(() => {
    app.typists.delete(event.user);
    renderTyping();
  }, TYPING_SHOWN_MS));
  renderTyping();
}

function stopTyping(user) {
  if (!app.typists.has(user)) return;
  clearTimeout(app.typists.get(user));
  app.typists.delete(user);
  renderTyping();
}

function clearTyping() {
  for (const timer of app.typists.values()) clearTimeout(timer);
  app.typists.clear();
  renderTyping();
}

function renderTyping() {
  const users = [...app.typists.keys()].sort();
  $('typing').textContent = users.length === 0 ? ''
    : `${users.join(', ')} ${users.length === 1 ? 'is' : 'are'} typing…`;
}

// ---------------------------------------------------------------------- search

$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const query = $('search-input').value.trim();
  const results = $('search-results');
  if (!query || !app.room) return;
  results.replaceChildren(paragraph('Searching…', 'notice'));
  try {
    const hits = await app.client.search(app.room, query, { limit: 10 });
    results.replaceChildren(...(hits.length === 0 ? [paragraph('No matches.', 'notice')]
      : hits.map((hit) => paragraph(
        `#${hit.message.seq} ${hit.message.user}: ${hit.message.body}`, 'search-hit'))));
  } catch (error) {
    results.replaceChildren(paragraph(error.code === 'unavailable'
      ? 'Search is not available on this server.'
      : `Search failed: ${error.message}`, 'notice'));
  }
});

function paragraph(text, className) {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}

function notice(text) {
  $('typing').textContent = text;
}

// ---------------------------------------------------------------------- start

const saved = sessionStorage.getItem(SESSION_KEY);
if (saved) {
  try {
    startSession(JSON.parse(saved));
  } catch {
    endSession();
  }
} else {
  $('auth-username').focus();
}
