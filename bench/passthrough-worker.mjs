// The floor of the platform as the benchmark runs it: a one-file JavaScript worker under the
// same `wrangler dev` that forwards the request to the stand-in and returns its response
// untouched. Whatever latency it adds over the direct baseline is wrangler dev's local proxy
// and workerd's HTTP handling, not Threadline's code. `x-upstream` overrides the upstream
// origin (the streaming-buffering probe uses its own stand-in).
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
