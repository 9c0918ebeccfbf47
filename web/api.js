// api.js — the demo page's calls to the REST API (same origin): accounts and rooms.

/** An HTTP API error with the server's `code` (`conflict`, `unauthorized`, …). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = data?.error || {};
    throw new ApiError(response.status, error.code || 'error', error.message || response.statusText);
  }
  return data;
}

/** `{user, token}` for a new account. */
export const register = (username, password) =>
  call('POST', '/api/auth/register', { body: { username, password } });

/** `{user, token}` for an existing account. */
export const login = (username, password) =>
  call('POST', '/api/auth/login', { body: { username, password } });

/** The rooms the user may see. */
export const listRooms = async (token) => (await call('GET', '/api/rooms', { token })).rooms;

/** Creates a room owned by the user. */
export const createRoom = (token, name, isPrivate) =>
  call('POST', '/api/rooms', { token, body: { name, private: isPrivate } });
