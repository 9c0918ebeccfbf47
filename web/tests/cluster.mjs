// cluster.mjs — real servers for the browser tests: a fresh PostgreSQL database for the run, two
// `bosar-chat serve` processes on free ports sharing it and the dev Redis (under a key prefix of
// their own), and a front door (front.mjs) that gives the browser one origin for both. Stopping
// kills the nodes and drops the database.
//
// Needs DATABASE_URL and REDIS_URL (`eval "$(scripts/dev-services env)"`), a built server
// (`cargo build --bin bosar-chat`; BOSAR_BIN overrides the path) and psql (PSQL overrides it).

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startFront } from './front.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'web');

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run \`make test-web\`, or \`eval "$(scripts/dev-services env)"\` first`);
  }
  return value;
}

function serverBinary() {
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
  const binary = process.env.BOSAR_BIN || join(target, 'debug', 'bosar-chat');
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`cargo build --bin bosar-chat\``);
  return binary;
}

/** psql from PSQL, the system, or the dev-services bundle. */
function psqlBinary() {
  if (process.env.PSQL) return process.env.PSQL;
  for (const dir of (process.env.PATH || '').split(':')) {
    if (dir && existsSync(join(dir, 'psql'))) return join(dir, 'psql');
  }
  const lib = join(ROOT, '.dev', 'venv', 'lib');
  for (const python of existsSync(lib) ? readdirSync(lib) : []) {
    const bundled = join(lib, python, 'site-packages', 'embedded_postgres', 'pginstall', 'bin', 'psql');
    if (existsSync(bundled)) return bundled;
  }
  throw new Error('psql not found: set PSQL');
}

function psql(adminUrl, sql) {
  execFileSync(psqlBinary(), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', adminUrl, '-c', sql], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, PGCONNECT_TIMEOUT: '5' },
  });
}

/** The admin URL pointed at another database of the same server. */
function databaseUrl(adminUrl, name) {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitUntilUp(port, child, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the node exited with ${child.exitCode}; see ${log}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the node on port ${port} did not come up; see ${log}`);
}

/** A node process: `bosar-chat serve` with its log in the artifacts folder. */
class Node {
  constructor(id, port, env) {
    this.id = id;
    this.port = port;
    this.env = env;
    this.child = null;
    this.log = join(ARTIFACTS, `${id}.log`);
  }

  async start(binary) {
    const out = createWriteStream(this.log, { flags: 'a' });
    this.child = spawn(binary, ['serve'], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout.pipe(out);
    this.child.stderr.pipe(out);
    this.exited = new Promise((r) => this.child.once('exit', r));
    await waitUntilUp(this.port, this.child, this.log);
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal and waits for the process to end (SIGKILL after `graceMs`). */
  async stop(signal = 'SIGTERM', graceMs = 5000) {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.running && this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Starts the database, two nodes (`node-a`, `node-b`) and the front door. The front door serves
 * the page from any live node, and `/n/0/…`, `/n/1/…` from one node each.
 */
export async function startCluster({ nodes: count = 2 } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const adminUrl = required('DATABASE_URL');
  const redisUrl = required('REDIS_URL');
  const binary = serverBinary();
  const run = randomBytes(6).toString('hex');
  // bosar_test_* databases are also swept by `scripts/dev-services drop-test-dbs`.
  const database = `bosar_test_web_${run}`;
  psql(adminUrl, `CREATE DATABASE ${database} TEMPLATE template0`);

  const shared = {
    PATH: process.env.PATH,
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl(adminUrl, database),
    DATABASE_POOL_SIZE: '4',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: `web-test-${run}`,
    JWT_SECRET: randomBytes(48).toString('base64'),
    PRESENCE_TTL_SECS: '3',
    RUN_MIGRATIONS: 'true',
    HTTP_WORKERS: '1',
    SHUTDOWN_GRACE_SECS: '2',
    LOG_FORMAT: 'pretty',
    RUST_LOG: process.env.TEST_LOG || 'info',
  };
  const nodes = [];
  const cluster = {
    database,
    nodes,
    front: null,
    /** The front door's origin, `http://127.0.0.1:PORT`. */
    get url() { return this.front.url; },
    node(id) { return nodes.find((n) => n.id === id); },
    async stop() {
      await this.front?.close();
      await Promise.all(nodes.map((n) => n.stop()));
      psql(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    },
  };
  // If the runner dies, take the nodes along.
  process.once('exit', () => nodes.forEach((n) => n.running && n.child.kill('SIGKILL')));
  try {
    // One after another: the first applies the migrations.
    for (let i = 0; i < count; i += 1) {
      const id = `node-${String.fromCharCode(97 + i)}`;
      const port = await freePort();
      const node = new Node(id, port, { ...shared, NODE_ID: id, PORT: String(port) });
      nodes.push(node);
      await node.start(binary);
    }
    cluster.front = await startFront(nodes.map((n) => n.port));
  } catch (error) {
    await cluster.stop().catch(() => {});
    throw error;
  }
  return cluster;
}
