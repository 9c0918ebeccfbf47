// Type declarations for bosar-client.js, the BoSar Chat browser client (see docs/protocol.md).

/** A stored chat message, as in `message` events and history pages. */
export interface Message {
  id: string;
  room: string;
  /** 1, 2, 3, … per room, gapless. */
  seq: number;
  user: string;
  body: string;
  /** RFC 3339 UTC with milliseconds. */
  ts: string;
  client_msg_id?: string;
}

export interface MessageEvent extends Message {
  type: 'message';
}

export interface Ack {
  type: 'ack';
  room: string;
  id: string;
  seq: number;
  ts: string;
  client_msg_id?: string;
  ref?: string;
}

export interface JoinedEvent {
  type: 'joined';
  room: string;
  last_seq: number;
  presence: string[];
  /** True when this join asked for the messages after the last seq seen (a rejoin). */
  resumed?: boolean;
  ref?: string;
}

export interface PresenceEvent {
  type: 'presence';
  room: string;
  joined: string[];
  left: string[];
}

export interface TypingEvent {
  type: 'typing';
  room: string;
  user: string;
}

export interface WelcomeEvent {
  type: 'welcome';
  user: string;
  node: string;
  heartbeat_ms: number;
}

export interface ErrorEvent {
  type?: 'error';
  code: string;
  message: string;
  ref?: string;
}

export interface SearchHit {
  message: Message;
  score: number;
}

export type ConnectionState =
  | 'idle'
  | 'connecting'
  | 'open'
  | 'reconnecting'
  | 'auth_failed'
  | 'closed';

export interface StateEvent {
  state: ConnectionState;
  /** With `reconnecting`: how long until the next attempt, in ms. */
  delay?: number;
  attempt?: number;
  /** With `open`. */
  node?: string;
  user?: string;
}

export interface CloseEvent {
  code: number;
  reason: string;
}

export interface EventMap {
  state: StateEvent;
  welcome: WelcomeEvent;
  joined: JoinedEvent;
  left: { type: 'left'; room: string };
  message: MessageEvent;
  ack: Ack;
  presence: PresenceEvent;
  typing: TypingEvent;
  error: ErrorEvent;
  close: CloseEvent;
  auth_error: CloseEvent;
}

export interface BosarClientOptions {
  /** WebSocket URLs (`wss://host/ws`) or same-origin paths (`/ws`); one further on each reconnect. */
  urls: string | string[];
  /** The JWT, or a function returning it (called before every connection attempt). */
  token: string | (() => string | Promise<string>);
  /** First reconnect delay ceiling (doubles per attempt, half of it jittered). Default 500. */
  backoffInitialMs?: number;
  /** Largest reconnect delay. Default 15000. */
  backoffMaxMs?: number;
  /** Time allowed from opening the socket to `welcome`. Default 10000. */
  connectTimeoutMs?: number;
  /** How often to send a `ping` frame. Default 20000. */
  pingIntervalMs?: number;
  /** How long to wait for its `pong` before reconnecting. Default 10000. */
  pingTimeoutMs?: number;
  /** How long to wait for a reply to history, search, leave or ping. Default 15000. */
  requestTimeoutMs?: number;
  /** Least time between two `typing` frames for one room. Default 2000. */
  typingIntervalMs?: number;
  /** A WebSocket constructor for environments without a global one. */
  WebSocket?: typeof WebSocket;
}

export class BosarError extends Error {
  constructor(code: string, message?: string);
  /** A protocol error code (`unavailable`, `forbidden`, …) or `disconnected`, `timeout`, `closed`. */
  code: string;
}

export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random?: () => number,
): number;

export function newClientMsgId(): string;

export class BosarClient {
  constructor(options: BosarClientOptions);
  readonly state: ConnectionState;
  readonly user: string | null;
  readonly node: string | null;
  readonly pendingCount: number;
  readonly rooms: string[];
  lastSeq(room: string): number | undefined;
  setToken(token: string | (() => string | Promise<string>)): void;
  on<K extends keyof EventMap>(event: K, listener: (payload: EventMap[K]) => void): () => void;
  connect(): void;
  close(): void;
  join(room: string, options?: { since?: number }): Promise<JoinedEvent>;
  leave(room: string): Promise<{ type: 'left'; room: string }>;
  send(
    room: string,
    body: string,
    options?: { clientMsgId?: string },
  ): Promise<Ack> & { clientMsgId: string };
  history(
    room: string,
    options?: { before?: number; after?: number; limit?: number },
  ): Promise<Message[]>;
  search(room: string, query: string, options?: { limit?: number }): Promise<SearchHit[]>;
  typing(room: string): void;
  ping(): Promise<number>;
}
