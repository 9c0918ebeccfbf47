// messages-view.js — the message list of the demo page. It holds each room message once, keyed
// by seq and kept in seq order, whether it came live, from a replay after a reconnect or from
// history; a message being sent shows as pending until its ack or its own echo arrives, and is
// then replaced, so there is never a second copy.

export class MessagesView {
  #list;
  #me;
  #bySeq = new Map(); // seq -> <li>
  #pending = new Map(); // client_msg_id -> <li>

  constructor(list, me) {
    this.#list = list;
    this.#me = me;
  }

  /** Empties the list (another room). */
  reset() {
    this.#bySeq.clear();
    this.#pending.clear();
    this.#list.replaceChildren();
  }

  /** The lowest seq shown, if any. */
  get oldestSeq() {
    const first = this.#list.querySelector('.message[data-seq]');
    return first ? Number(first.dataset.seq) : undefined;
  }

  /** Adds stored messages (live, replayed or from history); duplicates are ignored. */
  add(messages, { keepScroll = false } = {}) {
    const atBottom = this.#isAtBottom();
    const heightBefore = this.#list.scrollHeight;
    for (const message of messages) this.#addOne(message);
    if (keepScroll) {
      this.#list.scrollTop += this.#list.scrollHeight - heightBefore;
    } else if (atBottom) {
      this.#list.scrollTop = this.#list.scrollHeight;
    }
  }

  /** Shows a message the user is sending, until it is stored. */
  addPending(clientMsgId, body) {
    const item = this.#render({ user: this.#me, body, ts: null });
    item.classList.add('pending');
    item.dataset.clientMsgId = clientMsgId;
    item.querySelector('.meta time').textContent = 'sending…';
    this.#pending.set(clientMsgId, item);
    this.#list.append(item);
    this.#list.scrollTop = this.#list.scrollHeight;
  }

  /** The pending message was stored: it becomes (or gives way to) the stored one. */
  acked(clientMsgId, message) {
    this.#addOne(message);
  }

  /** The pending message was refused for good. */
  failed(clientMsgId, reason) {
    const item = this.#pending.get(clientMsgId);
    if (!item) return;
    item.classList.add('failed');
    item.querySelector('.meta time').textContent = `not sent: ${reason}`;
  }

  #addOne(message) {
    if (this.#bySeq.has(message.seq)) return;
    const pending = message.client_msg_id && this.#pending.get(message.client_msg_id);
    if (pending) {
      this.#pending.delete(message.client_msg_id);
      pending.remove();
    }
    const item = this.#render(message);
    item.dataset.seq = String(message.seq);
    this.#bySeq.set(message.seq, item);
    this.#insertInOrder(item, message.seq);
  }

  #insertInOrder(item, seq) {
    // Usually the newest: walk back from the end past pending items and newer messages.
    let after = this.#list.lastElementChild;
    while (after && (!after.dataset.seq || Number(after.dataset.seq) > seq)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(item);
    else this.#list.prepend(item);
  }

  #render(message) {
    const item = document.createElement('li');
    item.className = 'message';
    if (message.user === this.#me) item.classList.add('mine');
    const meta = document.createElement('div');
    meta.className = 'meta';
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = message.user;
    const time = document.createElement('time');
    if (message.ts) {
      time.dateTime = message.ts;
      time.textContent = new Date(message.ts).toLocaleTimeString([], {
        hour: '2-digit',
        minute: '2-digit',
      });
    }
    meta.append(author, time);
    const body = document.createElement('p');
    body.className = 'body';
    body.textContent = message.body;
    item.append(meta, body);
    return item;
  }

  #isAtBottom() {
    const list = this.#list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }
}
