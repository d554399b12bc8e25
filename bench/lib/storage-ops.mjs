// What one request did with storage, from bench/storage-sim.mjs's records: which D1 and KV
// calls ran before the provider call, which in parallel with it, which after, and how many
// round trips the provider call waited for, one after another.
//
// Every record has a start and an end sequence number from one counter, so "A finished before
// B began" is `A.endSeq < B.startSeq`, exactly. Two calls overlapping in time are parallel.

const STORAGE = new Set(['d1', 'kv']);

/**
 * The longest run of calls each starting after the previous one ended: how many round trips
 * wait on each other. Also the calls grouped into waves (a call's wave is one more than the
 * deepest wave that ended before it began), for printing.
 */
export function sequential(ops) {
  const sorted = [...ops].sort((a, b) => a.startSeq - b.startSeq);
  const depth = new Map();
  for (const op of sorted) {
    let d = 1;
    for (const prev of sorted) {
      if (prev === op) break;
      if (prev.endSeq < op.startSeq) d = Math.max(d, depth.get(prev) + 1);
    }
    depth.set(op, d);
  }
  const chain = Math.max(0, ...depth.values());
  const waves = Array.from({ length: chain }, () => []);
  for (const op of sorted) waves[depth.get(op) - 1].push(op);
  return { chain, waves };
}

/**
 * The calls `pivot` (a sequence number) waited on, as a critical path read backwards: the call
 * that ended last before it, then the one that ended last before that one began, and so on.
 * A call that merely finished early in the background (a counter written while a slower read
 * was still out) is not on it.
 */
export function waitedOn(ops, pivot) {
  const chain = [];
  let limit = pivot;
  for (;;) {
    let prev = null;
    for (const o of ops) if (o.endSeq < limit && (!prev || o.endSeq > prev.endSeq)) prev = o;
    if (!prev) break;
    chain.unshift(prev);
    limit = prev.startSeq;
  }
  return chain;
}

const count = (ops) => ({
  d1: ops.filter((o) => o.binding === 'd1').length,
  kv: ops.filter((o) => o.binding === 'kv').length,
  n: ops.length,
});

const label = (op) => {
  if (op.binding === 'fetch') return '**provider fetch**';
  if (op.binding === 'response') return '*response*';
  return `${op.binding === 'd1' ? 'D1' : 'KV'} ${op.op} ${op.subject}`;
};

/** "D1 first select api_keys → KV get rl:v1 ∥ D1 run update api_keys → …" */
export function describeWaves(waves) {
  return waves.map((w) => w.map(label).join(' ∥ ')).join(' → ');
}

/**
 * Splits one request's records around its first provider call (or, for a route that calls
 * no provider, around its response):
 * - before: finished before the provider call began (each one is in front of it);
 * - parallel: began before it and finished after it began;
 * - after: began after it (storing the reply, bookkeeping after the response…), with how
 *   many of those began after the handler had returned its Response.
 */
export function splitAroundProvider(records) {
  const storage = records.filter((r) => STORAGE.has(r.binding) && r.endSeq != null);
  const fetches = records.filter((r) => r.binding === 'fetch').sort((a, b) => a.startSeq - b.startSeq);
  const response = records.find((r) => r.binding === 'response');
  const pivot = fetches[0]?.startSeq ?? response?.startSeq ?? Infinity;
  const before = storage.filter((o) => o.endSeq < pivot);
  const parallel = storage.filter((o) => o.startSeq < pivot && o.endSeq > pivot);
  const after = storage.filter((o) => o.startSeq > pivot);
  const afterResponse = response ? after.filter((o) => o.startSeq > response.startSeq) : [];
  const seqBefore = sequential(before);
  const seqAll = sequential(storage);
  // The whole request in order, with its provider call and its response among the calls.
  const timeline = sequential([...storage, ...fetches.filter((f) => f.endSeq != null), ...(response ? [response] : [])]);
  return {
    providerCalls: fetches.length,
    before: {
      ...count(before),
      sequential: waitedOn(before, pivot).length,
      waitedOn: waitedOn(before, pivot).map(label),
      longestChain: seqBefore.chain,
    },
    parallel: { ...count(parallel), ops: parallel.map(label) },
    after: { ...count(after), afterResponse: afterResponse.length, ops: after.map(label) },
    total: { ...count(storage), sequential: seqAll.chain },
    timeline: describeWaves(timeline.waves),
    failed: storage.filter((o) => !o.ok).map(label),
  };
}
