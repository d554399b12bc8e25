// The floor for the files benchmark (bench/files.mjs): a one-file worker that writes a request
// body straight to the local R2 bucket FILES (PUT /<key>) and streams it back (GET /<key>),
// with no parsing, checks or D1, on the same runtime as Threadline.
export default {
  async fetch(request, env) {
    const key = new URL(request.url).pathname.slice(1) || 'object';
    if (request.method === 'PUT') {
      await env.FILES.put(key, request.body);
      return new Response(null, { status: 204 });
    }
    if (request.method === 'GET' && key === 'health') return new Response('ok');
    const object = await env.FILES.get(key);
    return object ? new Response(object.body) : new Response('missing', { status: 404 });
  },
};
