// Conversations end to end: the real worker with local D1 and KV. Messages are seeded with
// SQL here (sending them through the API needs a provider; chat.test.mjs covers that), which
// also proves the schema's triggers keep order, counters and the search index for any writer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { call, envelope, startWorker } from './harness.mjs';
import { registerAndLogin } from './accounts.mjs';

const OPERATOR_MODES = JSON.stringify([
  { id: 'tutor', name: 'Patient tutor', system_prompt: 'Explain step by step.', settings: { temperature: 0.3 } },
]);

/** A fresh id of the shape the worker issues (time-ordered hex). */
function newId(ms = Date.now()) {
  return ms.toString(16).padStart(12, '0') + randomBytes(10).toString('hex');
}

const sqlText = (s) => (s === null || s === undefined ? 'null' : `'${String(s).replaceAll("'", "''")}'`);
const sqlNum = (n) => (n === null || n === undefined ? 'null' : String(Number(n)));

/**
 * Inserts messages straight into D1 (one statement per message, one wrangler call).
 * Each: { role, content, created_at, model?, status?, prompt_tokens?, completion_tokens? }.
 * Returns them with their ids.
 */
async function seedMessages(w, conversationId, messages) {
  const rows = messages.map((m) => ({ id: newId(m.created_at), ...m }));
  const sql = rows
    .map((m) =>
      `insert into messages (id, conversation_id, role, content, model, status, prompt_tokens, completion_tokens, latency_ms, created_at) values (` +
      [sqlText(m.id), sqlText(conversationId), sqlText(m.role), sqlText(m.content), sqlText(m.model),
        sqlText(m.status ?? 'complete'), sqlNum(m.prompt_tokens), sqlNum(m.completion_tokens),
        sqlNum(m.latency_ms), sqlNum(m.created_at)].join(', ') + ');')
    .join('\n');
  await w.sql(sql);
  return rows;
}

/** Follows `next_cursor` from `first` until the last page; returns every item in order. */
async function collectPages(w, token, route, { limit, extra = '' } = {}) {
  const items = [];
  let cursor = null;
  for (let pages = 0; pages < 100; pages += 1) {
    const qs = new URLSearchParams({ limit: String(limit) });
    if (cursor) qs.set('cursor', cursor);
    const res = await call(w.url, 'GET', `${route}?${qs}${extra}`, { token });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.data.length <= limit);
    items.push(...res.body.data);
    if (!res.body.has_more) {
      assert.equal(res.body.next_cursor, null);
      return items;
    }
    assert.equal(typeof res.body.next_cursor, 'string');
    cursor = res.body.next_cursor;
  }
  throw new Error('pagination did not end');
}

describe('conversations', () => {
  let w;
  let alice;
  let bob;

  const create = (token, json) => call(w.url, 'POST', '/api/conversations', { token, json });

  before(async () => {
    w = await startWorker({ vars: { CHAT_MODES: OPERATOR_MODES } });
    alice = await registerAndLogin(w);
    bob = await registerAndLogin(w);
  });
  after(async () => { await w?.stop(); });

  test('GET /api/modes lists the built-in modes and the operator\'s', async () => {
    const res = await call(w.url, 'GET', '/api/modes');
    assert.equal(res.status, 200, res.text);
    const ids = res.body.data.map((m) => m.id);
    for (const id of ['general', 'similar_questions', 'image_description', 'tutor']) assert.ok(ids.includes(id), id);
    assert.equal(res.body.default_mode, 'general');
    const tutor = res.body.data.find((m) => m.id === 'tutor');
    assert.equal(tutor.system_prompt, 'Explain step by step.');
    assert.equal(tutor.settings.temperature, 0.3);
    assert.equal(res.body.data.find((m) => m.id === 'image_description').requires_vision, true);
  });

  test('every conversation route requires authentication', async () => {
    const id = newId();
    for (const [method, route] of [
      ['GET', '/api/conversations'], ['POST', '/api/conversations'], ['GET', `/api/conversations/${id}`],
      ['PATCH', `/api/conversations/${id}`], ['DELETE', `/api/conversations/${id}`],
      ['PUT', `/api/conversations/${id}/title`], ['GET', `/api/conversations/${id}/messages`],
      ['GET', `/api/conversations/${id}/export`], ['GET', '/api/chat/stats'],
    ]) {
      envelope(assert, await call(w.url, method, route), 401);
    }
  });

  test('POST creates with defaults from an empty body, and with every field', async () => {
    const empty = await call(w.url, 'POST', '/api/conversations', { token: alice.access_token });
    assert.equal(empty.status, 201, empty.text);
    assert.equal(empty.body.title, 'New conversation');
    assert.equal(empty.body.message_count, 0);
    assert.equal(empty.body.pinned, false);
    assert.deepEqual(empty.body.settings, {});
    assert.match(empty.body.id, /^[0-9a-f]{32}$/);
    assert.equal(empty.headers.get('location'), `/api/conversations/${empty.body.id}`);

    const full = await create(alice.access_token, {
      title: '  Trip\nplanning ', model: 'openai/gpt-4o', mode: 'tutor',
      system_prompt: 'Answer in French.', settings: { temperature: 0.5, theme: 'dark' },
    });
    assert.equal(full.status, 201, full.text);
    assert.equal(full.body.title, 'Trip planning');
    assert.equal(full.body.model, 'openai/gpt-4o');
    assert.equal(full.body.mode, 'tutor');
    assert.equal(full.body.system_prompt, 'Answer in French.');
    assert.deepEqual(full.body.settings, { temperature: 0.5, theme: 'dark' });

    const got = await call(w.url, 'GET', `/api/conversations/${full.body.id}`, { token: alice.access_token });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual({ ...got.body, messages: undefined, has_more_messages: undefined, messages_cursor: undefined },
      { ...full.body, messages: undefined, has_more_messages: undefined, messages_cursor: undefined });
    assert.deepEqual(got.body.messages, []);
    assert.equal(got.body.has_more_messages, false);
  });

  test('invalid conversation input is a 4xx naming the field', async () => {
    const token = alice.access_token;
    const cases = [
      [{ mode: 'pirate' }, 'mode'],
      [{ title: '   ' }, 'title'],
      [{ title: 'x'.repeat(201) }, 'title'],
      [{ model: 'gpt 4' }, 'model'],
      [{ model: 'nosuch/model' }, 'model'],
      [{ settings: { temperature: 7 } }, 'settings.temperature'],
      [{ settings: { max_tokens: 'many' } }, 'settings.max_tokens'],
      [{ settings: 'dark' }, 'settings'],
      [{ pinned: true }, 'pinned'],
      [{ title: 5 }, 'title'],
    ];
    for (const [json, param] of cases) {
      const e = envelope(assert, await create(token, json), 422, 'validation_failed');
      assert.equal(e.param, param, JSON.stringify(json));
    }
    envelope(assert, await call(w.url, 'POST', '/api/conversations', { token, body: '{"title":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
    envelope(assert, await call(w.url, 'POST', '/api/conversations', { token, body: 'title=x', headers: { 'content-type': 'text/plain' } }), 415);
  });

  test('PATCH renames, pins, archives and clears fields; PUT /title renames', async () => {
    const token = alice.access_token;
    const c = (await create(token, { title: 'Before', model: 'openai/gpt-4o', mode: 'general' })).body;
    const route = `/api/conversations/${c.id}`;

    const patched = await call(w.url, 'PATCH', route, { token, json: { title: 'After', pinned: true, archived: true, model: null, mode: 'similar_questions', settings: { top_p: 0.9 } } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.title, 'After');
    assert.equal(patched.body.pinned, true);
    assert.equal(patched.body.archived, true);
    assert.equal(patched.body.model, null);
    assert.equal(patched.body.mode, 'similar_questions');
    assert.deepEqual(patched.body.settings, { top_p: 0.9 });
    assert.ok(patched.body.updated_at >= c.updated_at);

    const unpinned = await call(w.url, 'PATCH', route, { token, json: { pinned: false, settings: null } });
    assert.equal(unpinned.body.pinned, false);
    assert.equal(unpinned.body.archived, true, 'fields not sent are unchanged');
    assert.equal(unpinned.body.title, 'After');
    assert.deepEqual(unpinned.body.settings, {});

    const renamed = await call(w.url, 'PUT', `${route}/title`, { token, json: { title: 'Via ChronoChat' } });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.body.title, 'Via ChronoChat');
    assert.equal((await call(w.url, 'GET', route, { token })).body.title, 'Via ChronoChat');

    for (const [json, param] of [[{}, null], [{ title: null }, 'title'], [{ pinned: null }, 'pinned'], [{ mode: 'nope' }, 'mode'], [{ pin: true }, 'pin']]) {
      const e = envelope(assert, await call(w.url, 'PATCH', route, { token, json }), 422, 'validation_failed');
      assert.equal(e.param, param, JSON.stringify(json));
    }
    const e = envelope(assert, await call(w.url, 'PUT', `${route}/title`, { token, json: { title: '' } }), 422);
    assert.equal(e.param, 'title');
  });

  test('another user\'s conversation answers 404 exactly like a missing or malformed id, and is left alone', async () => {
    const c = (await create(alice.access_token, { title: 'Alice private plans' })).body;
    await seedMessages(w, c.id, [{ role: 'user', content: 'alice secret', created_at: Date.now() }]);
    const missing = newId();
    const routes = (id) => [
      ['GET', `/api/conversations/${id}`],
      ['PATCH', `/api/conversations/${id}`, { json: { title: 'Hijacked', pinned: true } }],
      ['PUT', `/api/conversations/${id}/title`, { json: { title: 'Hijacked' } }],
      ['GET', `/api/conversations/${id}/messages`],
      ['GET', `/api/conversations/${id}/export`],
      ['GET', `/api/conversations/${id}/export?format=markdown`],
      ['DELETE', `/api/conversations/${id}`],
    ];
    const strip = (res) => ({ status: res.status, body: { ...res.body.error, request_id: undefined }, type: res.headers.get('content-type') });
    for (let i = 0; i < routes(c.id).length; i += 1) {
      const [method, route, opts = {}] = routes(c.id)[i];
      const foreign = await call(w.url, method, route, { token: bob.access_token, ...opts });
      envelope(assert, foreign, 404, 'not_found');
      const [, missingRoute] = routes(missing)[i];
      const absent = await call(w.url, method, missingRoute, { token: bob.access_token, ...opts });
      const [, badRoute] = routes('not-an-id')[i];
      const malformed = await call(w.url, method, badRoute, { token: bob.access_token, ...opts });
      assert.deepEqual(strip(foreign), strip(absent), `${method} ${route}`);
      assert.deepEqual(strip(foreign), strip(malformed), `${method} ${route}`);
    }
    const still = await call(w.url, 'GET', `/api/conversations/${c.id}`, { token: alice.access_token });
    assert.equal(still.status, 200);
    assert.equal(still.body.title, 'Alice private plans');
    assert.equal(still.body.pinned, false);
    assert.equal(still.body.messages.length, 1);
    const bobList = await call(w.url, 'GET', '/api/conversations?archived=all&limit=100', { token: bob.access_token });
    assert.ok(!bobList.body.data.some((x) => x.id === c.id));
    const bobSearch = await call(w.url, 'GET', '/api/conversations?q=secret', { token: bob.access_token });
    assert.deepEqual(bobSearch.body.data, []);
  });

  test('history pages return every message exactly once, in order, also while messages are added', async () => {
    const token = alice.access_token;
    const c = (await create(token, { title: 'Long history' })).body;
    const t0 = Date.now() - 100_000;
    // Several messages share a timestamp: order must still be total and stable.
    const seeded = await seedMessages(w, c.id, Array.from({ length: 23 }, (_, i) => ({
      role: i % 2 ? 'assistant' : 'user', content: `message ${i}`, created_at: t0 + Math.floor(i / 3),
    })));

    const asc = await collectPages(w, token, `/api/conversations/${c.id}/messages`, { limit: 5 });
    assert.deepEqual(asc.map((m) => m.content), seeded.map((m) => m.content));
    assert.equal(new Set(asc.map((m) => m.id)).size, 23);

    const desc = await collectPages(w, token, `/api/conversations/${c.id}/messages`, { limit: 4, extra: '&order=desc' });
    assert.deepEqual(desc.map((m) => m.content), seeded.map((m) => m.content).reverse());

    // Read two pages, then add messages — one with a clock behind the others — and go on.
    const first = await call(w.url, 'GET', `/api/conversations/${c.id}/messages?limit=10`, { token });
    const second = await call(w.url, 'GET', `/api/conversations/${c.id}/messages?limit=10&cursor=${first.body.next_cursor}`, { token });
    await seedMessages(w, c.id, [
      { role: 'user', content: 'late but skewed clock', created_at: t0 - 50_000 },
      { role: 'assistant', content: 'late reply', created_at: Date.now() },
    ]);
    const rest = [];
    let cursor = second.body.next_cursor;
    while (cursor) {
      const page = await call(w.url, 'GET', `/api/conversations/${c.id}/messages?limit=10&cursor=${cursor}`, { token });
      assert.equal(page.status, 200, page.text);
      rest.push(...page.body.data);
      cursor = page.body.next_cursor;
    }
    const all = [...first.body.data, ...second.body.data, ...rest].map((m) => m.content);
    assert.deepEqual(all, [...seeded.map((m) => m.content), 'late but skewed clock', 'late reply']);

    const detail = await call(w.url, 'GET', `/api/conversations/${c.id}?limit=6`, { token });
    assert.equal(detail.body.message_count, 25);
    assert.deepEqual(detail.body.messages.map((m) => m.content), all.slice(-6), 'latest messages, oldest first');
    assert.equal(detail.body.has_more_messages, true);
    const older = await collectPagesFrom(w, token, c.id, detail.body.messages_cursor);
    assert.deepEqual([...older.reverse(), ...detail.body.messages].map((m) => m.content), all);

    envelope(assert, await call(w.url, 'GET', `/api/conversations/${c.id}/messages?cursor=${first.body.next_cursor}&order=desc`, { token }), 422);
  });

  async function collectPagesFrom(w, token, id, cursor) {
    const items = [];
    while (cursor) {
      const page = await call(w.url, 'GET', `/api/conversations/${id}/messages?limit=7&cursor=${cursor}`, { token });
      assert.equal(page.status, 200, page.text);
      items.push(...page.body.data);
      cursor = page.body.next_cursor;
    }
    return items;
  }

  test('the list pages newest activity first, every conversation once, with pinned and archived filters', async () => {
    const user = await registerAndLogin(w);
    const token = user.access_token;
    const made = [];
    for (let i = 0; i < 7; i += 1) made.push((await create(token, { title: `List ${i}` })).body);
    // Activity: a message in the oldest conversation makes it the newest.
    await seedMessages(w, made[0].id, [{ role: 'user', content: 'bump', created_at: Date.now() + 60_000 }]);
    await call(w.url, 'PATCH', `/api/conversations/${made[1].id}`, { token, json: { pinned: true } });
    await call(w.url, 'PATCH', `/api/conversations/${made[2].id}`, { token, json: { archived: true } });

    const all = await collectPages(w, token, '/api/conversations', { limit: 3 });
    assert.equal(all.length, 6, 'archived hidden by default');
    assert.equal(new Set(all.map((c) => c.id)).size, 6);
    assert.equal(all[0].id, made[0].id);
    const activity = all.map((c) => c.last_message_at ?? c.created_at);
    assert.deepEqual(activity, [...activity].sort((a, b) => b - a));

    const pinned = await call(w.url, 'GET', '/api/conversations?pinned=true', { token });
    assert.deepEqual(pinned.body.data.map((c) => c.id), [made[1].id]);
    const unpinned = await call(w.url, 'GET', '/api/conversations?pinned=false&archived=all&limit=100', { token });
    assert.equal(unpinned.body.data.length, 6);
    const archived = await call(w.url, 'GET', '/api/conversations?archived=true', { token });
    assert.deepEqual(archived.body.data.map((c) => c.id), [made[2].id]);
    const everything = await call(w.url, 'GET', '/api/conversations?archived=all&limit=100', { token });
    assert.equal(everything.body.data.length, 7);

    for (const qs of ['limit=0', 'limit=101', 'limit=abc', 'pinned=maybe', 'archived=sometimes', 'cursor=garbage', `q=${'x'.repeat(201)}`]) {
      const e = envelope(assert, await call(w.url, 'GET', `/api/conversations?${qs}`, { token }), 422, 'validation_failed');
      assert.equal(e.param, qs.split('=')[0], qs);
    }
  });

  test('search finds conversations by title and by message text, and never 500s on FTS syntax', async () => {
    const user = await registerAndLogin(w);
    const token = user.access_token;
    const byTitle = (await create(token, { title: 'Kubernetes migration notes' })).body;
    const byText = (await create(token, { title: 'Untitled thoughts' })).body;
    const other = (await create(token, { title: 'Groceries' })).body;
    await seedMessages(w, byText.id, [
      { role: 'user', content: 'How do I write a Résumé for a zeppelin pilot job?', created_at: Date.now() },
      { role: 'assistant', content: 'Start with your flight hours.', created_at: Date.now() + 1 },
    ]);
    await seedMessages(w, other.id, [{ role: 'user', content: 'milk, eggs', created_at: Date.now() }]);
    const search = async (q, extra = '') => {
      const res = await call(w.url, 'GET', `/api/conversations?q=${encodeURIComponent(q)}${extra}`, { token });
      assert.equal(res.status, 200, `${q}: ${res.text}`);
      return res.body.data.map((c) => c.id);
    };
    assert.deepEqual(await search('kubernetes'), [byTitle.id]);
    assert.deepEqual(await search('zeppelin'), [byText.id], 'message text');
    assert.deepEqual(await search('flight hours'), [byText.id], 'assistant text, all words');
    assert.deepEqual(await search('zepp'), [byText.id], 'word prefix');
    assert.deepEqual(await search('resume'), [byText.id], 'diacritics ignored');
    assert.deepEqual(await search('zeppelin groceries'), [], 'every word must match');
    for (const hostile of ['"', '*', 'NEAR(', 'a OR', '"unterminated', "'; drop table messages; --", 'title:x', '(((', '^', 'AND', '-']) {
      await search(hostile);
    }
    assert.deepEqual(await search('"zeppelin"'), [byText.id], 'quotes are text');

    await call(w.url, 'PATCH', `/api/conversations/${byTitle.id}`, { token, json: { title: 'Container orchestration' } });
    assert.deepEqual(await search('kubernetes'), [], 'the old title is no longer indexed');
    assert.deepEqual(await search('orchestration'), [byTitle.id]);
    await call(w.url, 'PATCH', `/api/conversations/${byText.id}`, { token, json: { archived: true } });
    assert.deepEqual(await search('zeppelin'), []);
    assert.deepEqual(await search('zeppelin', '&archived=all'), [byText.id]);
  });

  test('export round-trips every message as JSON and as Markdown', async () => {
    const token = alice.access_token;
    const c = (await create(token, { title: 'Export me: résumé & code', system_prompt: 'Be brief.' })).body;
    const contents = [
      'First line\nsecond line',
      'Here is code:\n\n```rust\nfn main() { println!("hi"); }\n```\n',
      'Unicode: 日本語, emoji 👍🏽, quotes "double" and \'single\'',
      '## Looks like a heading\n- and a list',
    ];
    const t0 = Date.now();
    const seeded = await seedMessages(w, c.id, contents.map((content, i) => ({
      role: i % 2 ? 'assistant' : 'user', content, created_at: t0 + i,
      model: i % 2 ? 'openai/gpt-4o' : null, status: i === 3 ? 'partial' : 'complete',
    })));

    const json = await call(w.url, 'GET', `/api/conversations/${c.id}/export`, { token });
    assert.equal(json.status, 200, json.text);
    assert.match(json.headers.get('content-type'), /application\/json/);
    assert.match(json.headers.get('content-disposition'), /^attachment; filename="export-me-r-sum-code\.json"$/);
    assert.equal(json.body.format, 'threadline.conversation.v1');
    assert.equal(json.body.conversation.id, c.id);
    assert.equal(json.body.conversation.system_prompt, 'Be brief.');
    assert.deepEqual(json.body.messages.map((m) => m.content), contents);
    assert.deepEqual(json.body.messages.map((m) => m.id), seeded.map((m) => m.id));
    assert.equal(json.body.messages[3].status, 'partial');

    const md = await call(w.url, 'GET', `/api/conversations/${c.id}/export?format=markdown`, { token });
    assert.equal(md.status, 200, md.text);
    assert.match(md.headers.get('content-type'), /text\/markdown/);
    assert.match(md.headers.get('content-disposition'), /\.md"$/);
    assert.ok(md.text.startsWith('# Export me: résumé & code\n'));
    let position = 0;
    for (const content of contents) {
      const at = md.text.indexOf(content, position);
      assert.ok(at > position, `verbatim and in order: ${JSON.stringify(content)}`);
      position = at + content.length;
    }
    assert.ok(md.text.includes('## Assistant (openai/gpt-4o)'));
    assert.ok(md.text.includes('Reply interrupted'));

    const e = envelope(assert, await call(w.url, 'GET', `/api/conversations/${c.id}/export?format=pdf`, { token }), 422);
    assert.equal(e.param, 'format');
  });

  test('stats count the user\'s conversations and messages, and tokens by model', async () => {
    const user = await registerAndLogin(w);
    const token = user.access_token;
    const empty = await call(w.url, 'GET', '/api/chat/stats', { token });
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.body, {
      conversations: { total: 0, pinned: 0, archived: 0 },
      messages: { total: 0, user: 0, assistant: 0 },
      tokens: { prompt: 0, completion: 0, total: 0 },
      by_model: [],
    });
    const a = (await create(token, { title: 'A' })).body;
    const b = (await create(token, { title: 'B' })).body;
    await call(w.url, 'PATCH', `/api/conversations/${b.id}`, { token, json: { pinned: true } });
    const now = Date.now();
    await seedMessages(w, a.id, [
      { role: 'user', content: 'q1', created_at: now },
      { role: 'assistant', content: 'a1', created_at: now + 1, model: 'openai/gpt-4o', prompt_tokens: 10, completion_tokens: 5 },
      { role: 'user', content: 'q2', created_at: now + 2 },
      { role: 'assistant', content: 'a2', created_at: now + 3, model: 'openai/gpt-4o', prompt_tokens: 20, completion_tokens: 7 },
    ]);
    await seedMessages(w, b.id, [
      { role: 'user', content: 'q3', created_at: now },
      { role: 'assistant', content: 'a3', created_at: now + 1, model: 'anthropic/claude-3-5-haiku-latest', prompt_tokens: 100, completion_tokens: 50 },
    ]);
    const stats = await call(w.url, 'GET', '/api/chat/stats', { token });
    assert.deepEqual(stats.body.conversations, { total: 2, pinned: 1, archived: 0 });
    assert.deepEqual(stats.body.messages, { total: 6, user: 3, assistant: 3 });
    assert.deepEqual(stats.body.tokens, { prompt: 130, completion: 62, total: 192 });
    assert.deepEqual(stats.body.by_model, [
      { model: 'anthropic/claude-3-5-haiku-latest', messages: 1, prompt_tokens: 100, completion_tokens: 50, total_tokens: 150 },
      { model: 'openai/gpt-4o', messages: 2, prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 },
    ]);
  });

  test('DELETE removes the conversation, its messages and its search entries', async () => {
    const token = alice.access_token;
    const c = (await create(token, { title: 'Disposable quokka' })).body;
    await seedMessages(w, c.id, [{ role: 'user', content: 'ephemeral wombat', created_at: Date.now() }]);
    const found = await call(w.url, 'GET', '/api/conversations?q=wombat', { token });
    assert.deepEqual(found.body.data.map((x) => x.id), [c.id]);

    const del = await call(w.url, 'DELETE', `/api/conversations/${c.id}`, { token });
    assert.equal(del.status, 204, del.text);
    envelope(assert, await call(w.url, 'GET', `/api/conversations/${c.id}`, { token }), 404, 'not_found');
    envelope(assert, await call(w.url, 'DELETE', `/api/conversations/${c.id}`, { token }), 404, 'not_found');
    assert.deepEqual((await call(w.url, 'GET', '/api/conversations?q=wombat', { token })).body.data, []);
    assert.deepEqual((await call(w.url, 'GET', '/api/conversations?q=quokka', { token })).body.data, []);

    const [rows] = await w.sql(`select
      (select count(*) from messages where conversation_id = '${c.id}') as messages,
      (select count(*) from search_documents where conversation_id = '${c.id}') as documents,
      (select count(*) from search_text where search_text match '"wombat"') as indexed`);
    assert.deepEqual(rows, { messages: 0, documents: 0, indexed: 0 });
  });
});
