// The Node process that hosts one Miniflare instance for the benchmark (bench/lib/runtime.mjs
// spawns it in its own process group, so its CPU and that of the workerd it starts are counted
// apart from the benchmark's own). The worker is served on a direct socket of workerd: no
// Miniflare entry worker, no wrangler proxy, no inspector. What this process does per request
// is read the worker's log lines off workerd's stdout (Miniflare parses them) and print them.
//
//   node bench/lib/miniflare-host.mjs '<JSON: {modules: [{type, path}…] (the entry first), modulesRoot, compatibilityDate,
//     compatibilityFlags, bindings, d1Databases, kvNamespaces, r2Buckets, durableObjects?, persistTo}>'
//
// Prints one line `{"url":"http://127.0.0.1:…/"}` once the worker accepts requests; SIGTERM
// disposes of Miniflare (and so of workerd) and exits.
import { createRequire } from 'node:module';

// Miniflare as wrangler pins it (wrangler's own exact dependency), so the runtime measured is
// the workerd that `wrangler dev` and `wrangler deploy` are built against.
const require = createRequire(import.meta.url);
const fromWrangler = createRequire(require.resolve('wrangler/package.json'));
const { Miniflare, convertV4MiniflareOptions } = fromWrangler('miniflare');

const cfg = JSON.parse(process.argv[2]);
const mf = new Miniflare(convertV4MiniflareOptions({
  host: '127.0.0.1',
  port: 0,
  logRequests: false,
  telemetry: { enabled: false },
  handleStructuredLogs: ({ message }) => process.stdout.write(`${message}\n`),
  resourcePersistencePath: cfg.persistTo,
  modules: cfg.modules,
  modulesRoot: cfg.modulesRoot,
  compatibilityDate: cfg.compatibilityDate,
  compatibilityFlags: cfg.compatibilityFlags,
  bindings: cfg.bindings,
  d1Databases: cfg.d1Databases,
  kvNamespaces: cfg.kvNamespaces,
  durableObjects: cfg.durableObjects,
  r2Buckets: cfg.r2Buckets,
  // The pipeline queue: producer binding and this same worker as its consumer.
  queueProducers: cfg.queueProducers,
  queueConsumers: cfg.queueConsumers,
  unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
}));

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try { await mf.dispose(); } finally { process.exit(0); }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

try {
  const url = await mf.unsafeGetDirectURL();
  process.stdout.write(`${JSON.stringify({ url: url.href })}\n`);
} catch (err) {
  console.error(err);
  await mf.dispose().catch(() => {});
  process.exit(1);
}
