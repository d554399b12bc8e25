// Pipelines end to end: the real worker under wrangler dev with its local D1 and the local
// queue (the same worker's queue consumer runs every execution), against the provider
// stand-in. Includes a consumer failing in the middle (the provider erroring) after which the
// execution completes without repeating its finished steps.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { rm } from 'node:fs/promises';

import { call, envelope, startWorker } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';
import { sleep, standInVars, startWithStandIn } from './provider-helpers.mjs';
import { startStandIn } from '../support/stand-in.mjs';

// Each step uses its own model, so the stand-in can tell (and script) the steps apart.
const THREE_STEPS = {
  name: 'Draft, critique, polish',
  description: 'three prompt steps',
  inputs: ['topic'],
  steps: [
    { id: 'draft', kind: 'prompt', model: 'openai/gpt-4o', prompt: 'Write about {{input.topic}}', temperature: 0.2 },
    { id: 'critique', kind: 'prompt', model: 'openai/gpt-4o-mini', prompt: 'Critique: {{steps.draft.output}}', system: 'Be {{input.topic}}-savvy.' },
    { id: 'polish', kind: 'prompt', model: 'openai/gpt-4.1-mini', prompt: 'Polish {{steps.draft.output}} using {{steps.critique.output}}', max_tokens: 100 },
  ],
};

describe('pipelines on the local queue', () => {
  let env;
  let ada;
  let bob;

  before(async () => {
    env = await startWithStandIn({
      vars: {
        PROVIDER_MAX_RETRIES: '0',
        PIPELINE_RETRY_DELAY_SECS: '0',
        PIPELINE_MAX_ATTEMPTS: '3',
        PIPELINE_MAX_STEPS: '5',
        PIPELINE_MAX_DEFINITION_BYTES: '4096',
        RATE_LIMIT_CHAT: '10000/60',
      },
    });
    ada = await registerAndLogin(env.w);
    bob = await registerAndLogin(env.w);
  });
  after(async () => { await env?.stop(); });
  beforeEach(() => env.s.reset());

  const as = (who, method, route, json) => call(env.w.url, method, route, { token: who.access_token, json });
  const chats = (model) => env.s.requests.filter((r) => r.endpoint === 'chat' && (!model || r.model === model));
  const create = async (body = THREE_STEPS, who = ada) => {
    const res = await as(who, 'POST', '/api/pipelines', body);
    assert.equal(res.status, 201, res.text);
    return res.body;
  };
  async function until(who, id, done = (e) => ['succeeded', 'failed', 'cancelled'].includes(e.status), timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await as(who, 'GET', `/api/pipeline-executions/${id}`);
      assert.equal(res.status, 200, res.text);
      if (done(res.body)) return res.body;
      if (Date.now() > deadline) throw new Error(`execution never finished: ${res.text}`);
      await sleep(100);
    }
  }

  test('a definition is checked at creation: each mistake is a 422 naming the step and field', async () => {
    const step = (over) => ({ id: 'a', kind: 'prompt', model: 'openai/gpt-4o', prompt: 'hi', ...over });
    const cases = [
      [{ steps: [step({ prompt: 'Use {{input.nope}}' })] }, 'steps[0].prompt', /unknown variable \{\{input\.nope\}\}/],
      [{ steps: [step({ prompt: '{{ secrets }}' })] }, 'steps[0].prompt', /unknown variable/],
      [{ steps: [step({ prompt: 'unclosed {{input' })] }, 'steps[0].prompt', /never closed/],
      [{ steps: [step({ prompt: '{{steps.b.output}}' }), step({ id: 'b' })] }, 'steps[0].prompt', /later step `b`/],
      [{ steps: [step({ prompt: '{{steps.a.output}}' })] }, 'steps[0].prompt', /itself, a cycle/],
      [{ steps: [step({ prompt: '{{steps.zz.output}}' })] }, 'steps[0].prompt', /does not exist/],
      [{ steps: [step({ model: 'acme/gpt-99' })] }, 'steps[0].model', /Step `a`:.*does not exist/],
      [{ steps: [step({ mode: 'nope' })] }, 'steps[0].mode', /unknown mode/],
      [{ steps: [step(), step({ id: 'b', when: { step: 'a', contains: 'x', equals: 'y' } })] }, 'steps[1].when', /exactly one/],
      [{ steps: [step({ when: { step: 'b', contains: 'x' } }), step({ id: 'b' })] }, 'steps[0].when.step', /later step/],
      [{ steps: [step(), step({ id: 'a' })] }, 'steps[1].id', /Two steps/],
      [{ steps: [step({ temperature: 7 })] }, 'steps[0].temperature', /0 to 2/],
      [{ steps: [step({ tempreature: 1 })] }, 'steps[0].tempreature', /Unknown field/],
      [{ steps: [step(), step({ id: 'b', prompt: '{{steps.a.output.x}}' })] }, 'steps[1].prompt', /output_schema/],
    ];
    for (const [over, param, message] of cases) {
      const e = envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', ...over }), 422);
      assert.equal(e.param, param, `${JSON.stringify(over)} → ${e.message}`);
      assert.match(e.message, message);
    }
    const unavailable = envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', steps: [{ id: 'f', kind: 'file_analysis', file_id: 'x' }] }), 422, 'step_kind_unavailable');
    assert.equal(unavailable.param, 'steps[0].kind');
    envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', steps: [{ id: 't', kind: 'tool' }] }), 422, 'step_kind_unavailable');
    const many = Array.from({ length: 6 }, (_, i) => step({ id: `s${i}` }));
    assert.equal(envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', steps: many }), 422, 'too_many_steps').param, 'steps');
    envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', steps: [step({ prompt: 'x'.repeat(5000) })] }), 413, 'payload_too_large');
    const big = envelope(assert, await as(ada, 'POST', '/api/pipelines', { name: 'p', steps: [step({ max_tokens: 150000 })] }), 422, 'context_exceeded');
    assert.equal(big.param, 'steps[0].prompt');
    envelope(assert, await call(env.w.url, 'POST', '/api/pipelines', { json: THREE_STEPS }), 401);
    envelope(assert, await call(env.w.url, 'POST', '/api/pipelines', { token: ada.access_token, body: '{"name":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
    assert.equal((await as(ada, 'GET', '/api/pipelines')).body.data.length, 0, 'nothing was stored');
  });

  test('CRUD: create, list, read, update (new version), delete; another user gets 404', async () => {
    const p = await create();
    assert.equal(p.version, 1);
    assert.deepEqual(p.inputs, ['topic']);
    assert.deepEqual(p.steps.map((s) => [s.id, s.kind]), [['draft', 'prompt'], ['critique', 'prompt'], ['polish', 'prompt']]);
    const second = await create({ ...THREE_STEPS, name: 'second' });
    const list = await as(ada, 'GET', '/pipelines?limit=1');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.data.map((x) => x.id), [second.id]);
    assert.equal(list.body.has_more, true);
    const rest = await as(ada, 'GET', `/api/pipelines?before=${list.body.next_cursor}`);
    assert.ok(rest.body.data.some((x) => x.id === p.id));
    const updated = await as(ada, 'PUT', `/api/pipelines/${p.id}`, { ...THREE_STEPS, name: 'renamed' });
    assert.equal(updated.status, 200, updated.text);
    assert.deepEqual([updated.body.name, updated.body.version], ['renamed', 2]);
    assert.equal((await as(ada, 'GET', `/api/pipelines/${p.id}`)).body.version, 2);
    envelope(assert, await as(bob, 'GET', `/api/pipelines/${p.id}`), 404, 'not_found');
    envelope(assert, await as(bob, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'x' } }), 404, 'not_found');
    envelope(assert, await as(bob, 'PUT', `/api/pipelines/${p.id}`, THREE_STEPS), 404, 'not_found');
    envelope(assert, await as(bob, 'DELETE', `/api/pipelines/${p.id}`), 404, 'not_found');
    assert.equal((await as(ada, 'DELETE', `/api/pipelines/${second.id}`)).status, 204);
    envelope(assert, await as(ada, 'GET', `/api/pipelines/${second.id}`), 404, 'not_found');
    envelope(assert, await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: {} }), 422, 'validation_failed');
    envelope(assert, await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'x' }, inptu: 1 }), 422);
  });

  test('execute answers 202 at once; the queue consumer runs the steps and checkpoints each', async () => {
    const p = await create();
    env.s.script({ default: { match: { model: 'gpt-4o-mini' }, firstByteDelayMs: 300 } });
    const started = Date.now();
    const res = await as(ada, 'POST', `/pipelines/${p.id}/execute`, { input: { topic: 'tides' } });
    assert.equal(res.status, 202, res.text);
    assert.ok(Date.now() - started < 2000);
    assert.equal(res.body.status, 'queued');
    assert.equal(res.headers.get('location'), `/api/pipeline-executions/${res.body.id}`);
    const done = await until(ada, res.body.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(done.steps.map((s) => [s.id, s.status, s.attempts]), [['draft', 'succeeded', 1], ['critique', 'succeeded', 1], ['polish', 'succeeded', 1]]);
    assert.equal(done.steps[0].output, 'Echo: Write about tides');
    assert.equal(done.steps[1].output, 'Echo: Critique: Echo: Write about tides');
    assert.equal(done.output, done.steps[2].output);
    assert.ok(done.steps[1].latency_ms >= 300, `${done.steps[1].latency_ms}`);
    const sum = (k) => done.steps.reduce((n, s) => n + s.usage[k], 0);
    assert.equal(done.usage.prompt_tokens, sum('prompt_tokens'));
    assert.equal(done.usage.total_tokens, sum('prompt_tokens') + sum('completion_tokens'));
    assert.ok(done.usage.total_tokens > 0);
    // What each step sent: templates expanded, the system template and generation settings.
    const [draft, critique] = [chats('gpt-4o')[0], chats('gpt-4o-mini')[0]];
    assert.equal(draft.body.temperature, 0.2);
    assert.deepEqual(critique.body.messages.map((m) => m.role), ['system', 'user']);
    assert.equal(critique.body.messages[0].content, 'Be tides-savvy.');
    // Checkpoints in D1, one row per step.
    const rows = await env.w.sql(`select step_id, status from pipeline_step_runs where execution_id = '${done.id}' order by step_index`);
    assert.deepEqual(rows.map((r) => r.step_id), ['draft', 'critique', 'polish']);
    // Listed under its pipeline; another user cannot see it.
    const listed = await as(ada, 'GET', `/api/pipelines/${p.id}/executions`);
    assert.equal(listed.body.data[0].id, done.id);
    envelope(assert, await as(bob, 'GET', `/pipeline-executions/${done.id}`), 404, 'not_found');
    envelope(assert, await as(ada, 'POST', `/api/pipeline-executions/${done.id}/cancel`), 409, 'execution_finished');
  });

  test('a provider failing in the middle is retried on the queue; finished steps are never run again', async () => {
    const p = await create();
    // The second step's provider fails twice (its consumer run ends each time), then works.
    env.s.script({ queue: [{ match: { model: 'gpt-4o-mini' }, status: 500, times: 2 }] });
    const res = await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'retries' } });
    const done = await until(ada, res.body.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(done.steps.map((s) => s.attempts), [1, 3, 1]);
    assert.equal(chats('gpt-4o').length, 1, 'the first step ran (and was billed) once');
    assert.equal(chats('gpt-4o-mini').length, 3);
    assert.equal(chats('gpt-4.1-mini').length, 1);
    await env.w.waitForOutput(/"msg":"pipeline step retried"/);
  });

  test('after the last attempt the execution is failed with the step and error; earlier checkpoints stay', async () => {
    const p = await create();
    env.s.script({ default: { match: { model: 'gpt-4o-mini' }, status: 503 } });
    const res = await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'doom' } });
    const done = await until(ada, res.body.id);
    assert.equal(done.status, 'failed', JSON.stringify(done));
    assert.equal(done.error.step, 'critique');
    assert.match(done.error.message, /^provider_/);
    assert.deepEqual(done.steps.map((s) => [s.id, s.status]), [['draft', 'succeeded'], ['critique', 'failed']]);
    assert.equal(done.steps[1].attempts, 3);
    assert.equal(chats('gpt-4o-mini').length, 3, 'PIPELINE_MAX_ATTEMPTS tries');
    assert.equal(chats('gpt-4.1-mini').length, 0, 'nothing after the failed step');
    assert.equal(done.output, null);
    // A failure retrying cannot fix (a 400 from the provider) fails at the first try.
    env.s.reset();
    env.s.script({ default: { match: { model: 'gpt-4o' }, status: 400 } });
    const bad = await until(ada, (await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'x' } })).body.id);
    assert.equal(bad.status, 'failed');
    assert.equal(bad.steps[0].attempts, 1);
    assert.equal(chats('gpt-4o').length, 1);
  });

  test('cancel stops a running execution between steps', async () => {
    const p = await create();
    env.s.script({ default: { match: { model: 'gpt-4o-mini' }, firstByteDelayMs: 1500 } });
    const res = await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'stop' } });
    await env.s.waitFor((r) => r.model === 'gpt-4o-mini', { timeoutMs: 15_000 });
    const c = await as(ada, 'POST', `/api/pipeline-executions/${res.body.id}/cancel`);
    assert.equal(c.status, 202, c.text);
    assert.equal(c.body.cancel_requested, true);
    const done = await until(ada, res.body.id);
    assert.equal(done.status, 'cancelled', JSON.stringify(done));
    assert.deepEqual(done.steps.map((s) => s.id), ['draft', 'critique'], 'the step in flight finished and was kept');
    assert.equal(chats('gpt-4.1-mini').length, 0);
  });

  test('the event stream reports the status, each step as it is checkpointed, and done', async () => {
    const p = await create();
    env.s.script({ default: { match: { model: 'gpt-4o-mini' }, firstByteDelayMs: 700 } });
    const res = await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { topic: 'streams' } });
    const stream = await fetch(`${env.w.url}/api/pipeline-executions/${res.body.id}/events`, { headers: { authorization: `Bearer ${ada.access_token}` } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type'), /^text\/event-stream/);
    const text = await stream.text();
    const events = text.split('\n\n').filter((b) => b.startsWith('event:')).map((b) => {
      const [, event] = /^event: (.*)$/m.exec(b);
      const [, data] = /^data: (.*)$/m.exec(b);
      return { event, data: JSON.parse(data) };
    });
    const names = events.map((e) => (e.event === 'step' ? `step:${e.data.id}` : e.event === 'status' ? `status:${e.data.status}` : e.event));
    assert.deepEqual(names.filter((n) => n.startsWith('step:')), ['step:draft', 'step:critique', 'step:polish']);
    assert.ok(names.indexOf('step:draft') < names.indexOf('step:critique'));
    assert.equal(names.at(-2), 'status:succeeded');
    assert.equal(names.at(-1), 'done');
    assert.equal(events.at(-1).data.status, 'succeeded');
    assert.equal(events.at(-1).data.steps.length, 3);
    envelope(assert, await as(bob, 'GET', `/api/pipeline-executions/${res.body.id}/events`), 404, 'not_found');
  });

  test('a condition on an earlier output skips a step', async () => {
    const p = await create({
      name: 'triage',
      inputs: ['text'],
      steps: [
        { id: 'classify', model: 'openai/gpt-4o', prompt: 'Classify {{input.text}}', output_schema: { type: 'object', properties: { label: { type: 'string' } } } },
        { id: 'urgent', model: 'openai/gpt-4o-mini', prompt: 'Escalate {{input.text}}', when: { step: 'classify', field: 'label', equals: 'urgent' } },
        { id: 'routine', model: 'openai/gpt-4.1-mini', prompt: 'File {{steps.classify.output.label}}', when: { step: 'classify', field: 'label', not_equals: 'urgent' } },
      ],
    });
    env.s.script({ default: { match: { model: 'gpt-4o' }, text: '```json\n{"label":"routine"}\n```' } });
    const res = await as(ada, 'POST', `/api/pipelines/${p.id}/execute`, { input: { text: 'a printer jam' } });
    const done = await until(ada, res.body.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(done.steps.map((s) => [s.id, s.status]), [['classify', 'succeeded'], ['urgent', 'skipped'], ['routine', 'succeeded']]);
    assert.deepEqual(done.steps[0].output, { label: 'routine' });
    assert.equal(done.steps[2].output, 'Echo: File routine');
    assert.match(chats('gpt-4o')[0].body.messages[0].content, /JSON Schema/);
    assert.equal(chats('gpt-4o-mini').length, 0);
  });
});

describe('a worker restarted in the middle of an execution', () => {
  let s;
  let w;
  let oldDir; // the first worker's directory, which holds the state both workers use
  after(async () => {
    await w?.stop();
    await s?.close();
    if (oldDir) await rm(oldDir, { recursive: true, force: true });
  });

  test('the execution resumes at its unfinished step and never repeats a finished one', async () => {
    s = await startStandIn({ port: 0 });
    const vars = {
      ...standInVars(s.url),
      PROVIDER_MAX_RETRIES: '0',
      PROVIDER_TIMEOUT_SECS: '3',
      PIPELINE_RETRY_DELAY_SECS: '0',
      PIPELINE_SWEEP_GRACE_SECS: '1',
    };
    w = await startWorker({ vars, devArgs: ['--test-scheduled'] });
    const user = await registerAndLogin(w);
    const as = (method, route, json) => call(w.url, method, route, { token: user.access_token, json });
    const p = await as('POST', '/api/pipelines', THREE_STEPS);
    // The second step's provider hangs; the worker is killed while it waits.
    s.script({ queue: [{ match: { model: 'gpt-4o-mini' }, firstByteDelayMs: 60_000 }] });
    const e = await as('POST', `/api/pipelines/${p.body.id}/execute`, { input: { topic: 'restarts' } });
    await s.waitFor((r) => r.model === 'gpt-4o-mini', { timeoutMs: 20_000 });
    await w.stop({ keepState: true });
    const stateDir = w.stateDir;
    oldDir = w.dir;
    w = await startWorker({ vars, stateDir, devArgs: ['--test-scheduled'] });
    const seen = await call(w.url, 'GET', `/api/pipeline-executions/${e.body.id}`, { token: user.access_token });
    assert.equal(seen.body.status, 'running', seen.text);
    assert.deepEqual(seen.body.steps.map((x) => x.id), ['draft'], 'the first step was checkpointed before the restart');
    // The consumer's message died with it: once its lease (3 s timeout + margin) has run out,
    // the cron sweep sends it again.
    let done;
    for (let i = 0; i < 60 && !done; i++) {
      await sleep(500);
      await fetch(`${w.url}/__scheduled`).then((r) => r.arrayBuffer());
      const r = await call(w.url, 'GET', `/api/pipeline-executions/${e.body.id}`, { token: user.access_token });
      if (['succeeded', 'failed', 'cancelled'].includes(r.body.status)) done = r.body;
    }
    assert.ok(done, 'the execution finished after the restart');
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(done.steps.map((x) => [x.id, x.status]), [['draft', 'succeeded'], ['critique', 'succeeded'], ['polish', 'succeeded']]);
    const calls = (model) => s.requests.filter((r) => r.endpoint === 'chat' && r.model === model).length;
    assert.equal(calls('gpt-4o'), 1, 'the finished step was not run again');
    assert.equal(calls('gpt-4o-mini'), 2, 'the interrupted step ran again');
    assert.equal(calls('gpt-4.1-mini'), 1);
    await w.waitForOutput(/"msg":"pipeline execution requeued"/);
  });
});
