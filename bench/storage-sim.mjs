// Remote storage, simulated: the module entry the benchmark serves in front of Threadline's own
// (bench/lib/runtime.mjs copies this file next to a snapshot of build/ and src/entry.mjs, so
// `./src/entry.mjs` below is that snapshot). It hands Threadline an `env` whose `DB` and `KV`
// are the real local bindings behind a thin facade that
// - waits `BENCH_STORAGE_LATENCY` (e.g. "d1=30,kv=5", milliseconds) before each call reaches
//   the local binding, as a round trip to D1's primary or to KV's central store would; and
// - records every call: binding, operation, what it touched, start and end (Date.now(), the
//   same wall clock the stand-in stamps `receivedAt` with) and a sequence number for each
//   start and each end, so which call finished before which began is exact even within a
//   millisecond.
// It also records, the same way, each outbound `fetch` (the provider call) and the moment
// Threadline's handler returned its Response (for a stream: the headers, before the body).
// `GET /__bench/storage-ops` answers the records so far and forgets them; every other request
// goes to Threadline unchanged.
//
// The facade implements what workers-rs 0.8 calls on the bindings, and passes every argument
// through untouched: `D1Database.prepare/batch/exec/dump/withSession`, a statement's
// `bind(...values)/first(column?)/all()/run()/raw(options?)`, and `KVNamespace.get(key|keys,
// options)/getWithMetadata/put(key, value, options)/delete/list(options)`. workers-rs checks
// that the D1 binding's constructor is named `D1Database`, so the facade's class is.
// Results and errors are the local binding's own objects.
import Threadline, { ConversationLive as ThreadlineConversationLive } from './src/entry.mjs';

const ops = [];
let seq = 0;
const sleep = (ms) => (ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : null);

function parseLatency(spec) {
  const out = { d1: 0, kv: 0 };
  for (const part of String(spec ?? '').split(',')) {
    const m = /^\s*(d1|kv)\s*=\s*(\d+(?:\.\d+)?)\s*$/i.exec(part);
    if (m) out[m[1].toLowerCase()] = Number(m[2]);
  }
  return out;
}

/** What a statement touched, for the report: its verb and first table ("select api_keys"). */
function sqlSubject(sql) {
  const s = String(sql).replace(/\s+/g, ' ').trim().toLowerCase();
  const verb = /^(\w+)/.exec(s)?.[1] ?? '?';
  const table = /\b(?:from|into|update|join)\s+["`]?([a-z_][a-z0-9_]*)/.exec(s)?.[1];
  return table ? `${verb} ${table}` : verb;
}

/** A KV key without its hashes and ids: `rl:v1`, `session`, `user-sessions`. */
function kvSubject(key) {
  if (Array.isArray(key)) return `${key.length} keys`;
  return String(key ?? '').split(':').filter((p) => !/^[0-9a-f]{16,}$/i.test(p) && !/^\d+$/.test(p) && p.length < 40).slice(0, 2).join(':') || '?';
}

/** Runs `call` after `delayMs`, recording one operation. */
async function timed(binding, op, subject, delayMs, call) {
  const rec = { binding, op, subject, start: Date.now(), startSeq: ++seq, end: null, endSeq: null, ok: true };
  ops.push(rec);
  try {
    await sleep(delayMs);
    return await call();
  } catch (err) {
    rec.ok = false;
    throw err;
  } finally {
    rec.end = Date.now();
    rec.endSeq = ++seq;
  }
}

// The provider call: recorded from the call to its response headers. workers-rs looks
// `fetch` up on the global object at each call, so replacing it here is what it calls.
const platformFetch = globalThis.fetch;
globalThis.fetch = function fetch(input, init) {
  const url = typeof input === 'string' ? input : input?.url ?? String(input);
  let subject = url;
  try { subject = new URL(url).pathname; } catch { /* keep it whole */ }
  return timed('fetch', 'fetch', subject, 0, () => platformFetch.call(globalThis, input, init));
};

class D1PreparedStatement {
  constructor(inner, sql, delayMs) {
    this.inner = inner;
    this.sql = sql;
    this.delayMs = delayMs;
  }

  bind(...values) {
    return new D1PreparedStatement(this.inner.bind(...values), this.sql, this.delayMs);
  }

  first(column) {
    return timed('d1', 'first', sqlSubject(this.sql), this.delayMs, () => (column === undefined ? this.inner.first() : this.inner.first(column)));
  }

  all() {
    return timed('d1', 'all', sqlSubject(this.sql), this.delayMs, () => this.inner.all());
  }

  run() {
    return timed('d1', 'run', sqlSubject(this.sql), this.delayMs, () => this.inner.run());
  }

  raw(options) {
    return timed('d1', 'raw', sqlSubject(this.sql), this.delayMs, () => (options === undefined ? this.inner.raw() : this.inner.raw(options)));
  }
}

const unwrap = (statements) => statements.map((s) => (s instanceof D1PreparedStatement ? s.inner : s));
const batchSubject = (statements) => statements.map((s) => (s instanceof D1PreparedStatement ? sqlSubject(s.sql) : '?')).join(' + ');

/** What a database and a session of it both offer: statements and batches. */
class D1Queries {
  constructor(inner, delayMs) {
    this.inner = inner;
    this.delayMs = delayMs;
  }

  prepare(sql) {
    return new D1PreparedStatement(this.inner.prepare(sql), sql, this.delayMs);
  }

  batch(statements) {
    return timed('d1', 'batch', batchSubject(statements), this.delayMs, () => this.inner.batch(unwrap(statements)));
  }
}

class D1DatabaseSession extends D1Queries {
  getBookmark() {
    return this.inner.getBookmark();
  }
}

class D1Database extends D1Queries {

  exec(sql) {
    return timed('d1', 'exec', sqlSubject(sql), this.delayMs, () => this.inner.exec(sql));
  }

  dump() {
    return timed('d1', 'dump', 'dump', this.delayMs, () => this.inner.dump());
  }

  withSession(constraintOrBookmark) {
    return new D1DatabaseSession(this.inner.withSession(constraintOrBookmark), this.delayMs);
  }
}

class KVNamespace {
  constructor(inner, delayMs) {
    this.inner = inner;
    this.delayMs = delayMs;
  }

  get(key, options) {
    return timed('kv', 'get', kvSubject(key), this.delayMs, () => this.inner.get(key, options));
  }

  getWithMetadata(key, options) {
    return timed('kv', 'getWithMetadata', kvSubject(key), this.delayMs, () => this.inner.getWithMetadata(key, options));
  }

  put(key, value, options) {
    return timed('kv', 'put', kvSubject(key), this.delayMs, () => this.inner.put(key, value, options));
  }

  delete(key) {
    return timed('kv', 'delete', kvSubject(key), this.delayMs, () => this.inner.delete(key));
  }

  list(options) {
    return timed('kv', 'list', kvSubject(options?.prefix ?? ''), this.delayMs, () => this.inner.list(options));
  }
}

let facade = null;

/** The local bindings behind the facade, made once per `env` the runtime hands over. */
function facadeOf(env) {
  if (!facade || facade.source !== env) {
    const latency = parseLatency(env.BENCH_STORAGE_LATENCY);
    const wrapped = { ...env, DB: new D1Database(env.DB, latency.d1), KV: new KVNamespace(env.KV, latency.kv) };
    delete wrapped.BENCH_STORAGE_LATENCY;
    facade = { source: env, env: wrapped };
  }
  return facade.env;
}

// The conversations' Durable Object runs the streamed chat turn, so its D1 and KV calls go
// through the same facade (it runs in this isolate: the records are the same list).
export class ConversationLive extends ThreadlineConversationLive {
  constructor(state, env) {
    super(state, facadeOf(env));
  }
}

export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === '/__bench/storage-ops') {
      const taken = ops.splice(0, ops.length);
      return Response.json({ now: Date.now(), ops: taken });
    }
    const response = await Threadline.fetch(request, facadeOf(env), ctx);
    const at = Date.now();
    const n = ++seq;
    ops.push({ binding: 'response', op: 'response', subject: String(response.status), start: at, startSeq: n, end: at, endSeq: n, ok: true });
    return response;
  },
};
