// front.mjs — the browser tests' front door, in the role of the load balancer: one origin
// (127.0.0.1, a free port) in front of several nodes, so that the page's CSP (`'self'` only) lets
// it reach every one of them. `/n/<i>/<path>` goes to node i (the prefix stripped): a session
// stuck to one node, as with a sticky load balancer. Any other path goes to the first node that
// accepts the connection. HTTP requests and WebSocket upgrades are forwarded byte for byte; when
// a node dies its sockets are cut, as the browser would see it. `hold(i)` makes new upgrades to
// node i wait until `release(i)`, to keep a client away while something happens elsewhere;
// `freeze(i)` stops forwarding on node i's open WebSockets without closing them (a half-open
// connection, which only a heartbeat can detect).

import { request as httpRequest, createServer } from 'node:http';
import { connect } from 'node:net';

const PREFIX = /^\/n\/(\d+)(\/.*)?$/;

export async function startFront(ports) {
  const sockets = new Set();
  const held = new Map(); // node index -> [release callbacks]
  const tunnels = new Map(); // node index -> Set of [client, upstream]

  /** [node index, path on the node] candidates for a request path. */
  function route(url) {
    const match = PREFIX.exec(url);
    if (match) return [[Number(match[1]), match[2] || '/']];
    return ports.map((_, i) => [i, url]);
  }

  const server = createServer((req, res) => {
    const candidates = route(req.url);
    const body = [];
    req.on('data', (chunk) => body.push(chunk));
    req.on('end', () => forward(0));

    function forward(k) {
      if (k >= candidates.length) {
        res.writeHead(502, { 'content-type': 'text/plain' }).end('no node answered');
        return;
      }
      const [index, path] = candidates[k];
      const upstream = httpRequest({
        host: '127.0.0.1',
        port: ports[index],
        method: req.method,
        path,
        headers: req.headers,
        agent: false,
      }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', (error) => {
        if (res.headersSent) res.destroy(error);
        else forward(k + 1);
      });
      upstream.end(Buffer.concat(body));
    }
  });

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  server.on('upgrade', async (req, client, head) => {
    client.on('error', () => client.destroy());
    for (const [index, path] of route(req.url)) {
      const waiting = held.get(index);
      if (waiting) await new Promise((r) => waiting.push(r));
      if (client.destroyed) return;
      const upstream = await dial(ports[index]);
      if (!upstream) continue;
      tunnel(req, path, head, client, upstream);
      if (!tunnels.has(index)) tunnels.set(index, new Set());
      const pair = [client, upstream];
      tunnels.get(index).add(pair);
      upstream.on('close', () => tunnels.get(index).delete(pair));
      return;
    }
    client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
  });

  /** A connected socket to the node, or null if it refuses. */
  function dial(port) {
    return new Promise((resolve) => {
      const upstream = connect(port, '127.0.0.1');
      upstream.once('connect', () => resolve(upstream));
      upstream.once('error', () => resolve(null));
    });
  }

  /** Replays the upgrade request to the node, then pipes both ways until either side ends. */
  function tunnel(req, path, head, client, upstream) {
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    const lines = [`${req.method} ${path} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    upstream.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  }

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    hold(index) {
      if (!held.has(index)) held.set(index, []);
    },
    freeze(index) {
      for (const [client, upstream] of tunnels.get(index) || []) {
        upstream.unpipe(client);
        client.unpipe(upstream);
        upstream.pause();
        client.pause();
      }
    },
    release(index) {
      for (const go of held.get(index) || []) go();
      held.delete(index);
    },
    async close() {
      for (const index of [...held.keys()]) this.release(index);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
