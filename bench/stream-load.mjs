// A closed-loop load client for streamed (Server-Sent Events) requests, run by bench/run.mjs
// as a separate process: `concurrency` connections each POST, read the stream to its end and
// POST again until `durationS` has passed. wrk cannot see inside a response, so this records
// per request the time to the first byte of the body (TTFB) and to its last byte (TTLB).
//
//   node bench/stream-load.mjs '{"url":…,"headers":{…},"body":"…","concurrency":16,"durationS":6,
//                                "paths":["/a","/b"], "expect":"[DONE]"}'
//
// Prints one JSON line: requests, rps, ttfb/ttlb percentiles (ms), errors by kind, and the
// first few error messages. A response that is not 2xx, not text/event-stream, or that ends
// without `expect` in its body counts as an error.
import http from 'node:http';

const opts = JSON.parse(process.argv[2]);
const { url, headers = {}, body, concurrency = 1, durationS = 5, expect = '', paths = null } = opts;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const payload = Buffer.from(body);

const ttfb = [];
const ttlb = [];
const errors = { status: 0, content_type: 0, incomplete: 0, network: 0 };
const samples = [];
let counter = 0;

function once() {
  return new Promise((resolve) => {
    const path = paths ? paths[counter++ % paths.length] : target.pathname + target.search;
    const t0 = performance.now();
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': payload.length, ...headers },
      },
      (res) => {
        let first = null;
        let tail = '';
        let text = '';
        res.on('data', (chunk) => {
          if (first === null) first = performance.now();
          const s = chunk.toString('utf8');
          tail = (tail + s).slice(-8192);
          if (res.statusCode >= 300 && text.length < 400) text += s;
        });
        res.on('end', () => {
          const end = performance.now();
          if (res.statusCode < 200 || res.statusCode > 299) {
            errors.status += 1;
            if (samples.length < 3) samples.push(`status ${res.statusCode}: ${text.slice(0, 300)}`);
          } else if (!String(res.headers['content-type'] || '').includes('text/event-stream')) {
            errors.content_type += 1;
            if (samples.length < 3) samples.push(`content-type ${res.headers['content-type']}`);
          } else if (expect && !tail.includes(expect)) {
            errors.incomplete += 1;
            if (samples.length < 3) samples.push(`stream ended without ${expect}: …${tail}`);
          } else {
            ttfb.push((first ?? end) - t0);
            ttlb.push(end - t0);
          }
          resolve();
        });
        res.on('error', (err) => {
          errors.network += 1;
          if (samples.length < 3) samples.push(String(err));
          resolve();
        });
      },
    );
    req.on('error', (err) => {
      errors.network += 1;
      if (samples.length < 3) samples.push(String(err));
      resolve();
    });
    req.end(payload);
  });
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const started = performance.now();
const deadline = started + durationS * 1000;
async function loop() {
  while (performance.now() < deadline) await once();
}
await Promise.all(Array.from({ length: concurrency }, loop));
const elapsed = (performance.now() - started) / 1000;
agent.destroy();
const round = (x) => (x == null ? null : Math.round(x * 1000) / 1000);
console.log(JSON.stringify({
  requests: ttlb.length,
  rps: ttlb.length / elapsed,
  elapsed_s: elapsed,
  ttfb: { p50: round(pct(ttfb, 50)), p90: round(pct(ttfb, 90)), p99: round(pct(ttfb, 99)) },
  ttlb: { p50: round(pct(ttlb, 50)), p90: round(pct(ttlb, 90)), p99: round(pct(ttlb, 99)) },
  errors,
  error_samples: samples,
}));
