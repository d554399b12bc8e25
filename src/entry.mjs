// The Worker's module entry: a thin shell around the Rust worker that worker-build generates
// in build/worker/shim.mjs.
//
// It exists for one reason: a Rust panic in wasm aborts the instance, and the request that
// panicked would otherwise get workerd's bare 500 page. Here it gets Threadline's JSON error
// envelope with its request id, the panic is logged as a JSON line, and the shim has already
// marked the instance for re-initialisation, so the next request is served normally.
import Threadline from '../build/worker/shim.mjs';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestIdOf(request) {
  const given = request.headers.get('x-request-id');
  if (given && REQUEST_ID.test(given)) return given;
  return crypto.randomUUID().replaceAll('-', '');
}

// A panic inside an async handler traps in a microtask, not in our call stack: it reaches
// the global 'error' event (where the shim also flags the instance for re-initialisation)
// and the handler's promise never settles. Requests in flight are therefore failed from here.
const inFlight = new Set();
function failInFlight(err) {
  for (const fail of inFlight) fail(err);
  inFlight.clear();
}
addEventListener('error', (event) => failInFlight(event.error ?? event));
addEventListener('unhandledrejection', (event) => failInFlight(event.reason ?? event));

export default {
  async fetch(request, env, ctx) {
    const requestId = requestIdOf(request);
    let fail;
    const failed = new Promise((_, reject) => { fail = reject; });
    inFlight.add(fail);
    try {
      return await Promise.race([new Threadline(ctx, env).fetch(request), failed]);
    } catch (err) {
      console.error(JSON.stringify({
        time: new Date().toISOString(),
        level: 'error',
        msg: 'panic',
        request_id: requestId,
        method: request.method,
        status: 500,
        error_code: 'internal_error',
        error_detail: String(err && err.message ? err.message : err),
      }));
      const body = JSON.stringify({
        error: {
          code: 'internal_error',
          message: 'Internal server error.',
          type: 'api_error',
          param: null,
          request_id: requestId,
        },
        detail: 'Internal server error.',
      });
      return new Response(body, {
        status: 500,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'x-request-id': requestId,
          'cache-control': 'no-store',
        },
      });
    } finally {
      inFlight.delete(fail);
    }
  },

  // The pipeline queue's consumer. A panic here is retried by the queue like any failure
  // (the message is delivered again and resumes at its first unfinished step).
  async queue(batch, env, ctx) {
    return new Threadline(ctx, env).queue(batch);
  },

  // The cron trigger: sends the messages of pipeline executions that lost theirs again.
  async scheduled(controller, env, ctx) {
    return new Threadline(ctx, env).scheduled(controller);
  },
};

// Realtime: the conversation's Durable Object class (Rust, `#[durable_object]` in
// src/live/object.rs), which worker-build exports from the shim; wrangler.toml binds it.
export { ConversationLive } from '../build/worker/shim.mjs';
