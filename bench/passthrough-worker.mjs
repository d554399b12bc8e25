// The floor of the platform as the benchmark runs it: a one-file JavaScript worker served
// exactly as Threadline is (workerd through Miniflare, a direct socket: bench/lib/runtime.mjs)
// that forwards the request to the stand-in and returns its response untouched. Whatever
// latency and CPU it adds over the direct baseline is workerd's own HTTP handling and fetch,
// not Threadline's code. `x-upstream` overrides the upstream origin (the streaming-delay
// probe uses its own stand-in). The labelled `passthrough-wrangler-dev` target serves the same
// file under `wrangler dev`.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return new Response('ok');
    const origin = request.headers.get('x-upstream') || env.UPSTREAM;
    return fetch(origin + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
    });
  },
};
