// Files in R2: upload (one, several, Web+'s paths), list, metadata, download, delete; types
// sniffed from the bytes; limits with the status that names them; another user's file a 404
// exactly like a missing one; hostile names stored safely; account deletion removing the bytes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { call, envelope, startWorker } from './harness.mjs';
import { GOOD_PASSWORD, registerAndLogin } from './accounts.mjs';

const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f0005000' +
    '1ff89993d1d0000000049454e44ae426082',
  'hex',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

const LIMITS = { MAX_FILE_SIZE: '65536', MAX_FILES_PER_UPLOAD: '3', FILE_STORAGE_QUOTA_BYTES: '150000', RATE_LIMIT_REGISTER: '1000/600' };

/** POSTs a multipart form of `files` ([field, bytes, name, type]) and parses the answer. */
async function upload(w, token, route, files) {
  const form = new FormData();
  for (const [field, bytes, name, type] of files) form.append(field, new Blob([bytes], { type: type ?? '' }), name);
  const res = await fetch(`${w.url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, headers: res.headers, body, text };
}

describe('files in R2', () => {
  let w;
  let ada;
  let bob;
  before(async () => {
    w = await startWorker({ vars: LIMITS });
    ada = await registerAndLogin(w);
    bob = await registerAndLogin(w);
  });
  after(async () => { await w?.stop(); });

  test('upload, metadata, list, download and delete one file', async () => {
    const up = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG, 'pixel.png', 'image/png']]);
    assert.equal(up.status, 201, up.text);
    const file = up.body;
    assert.deepEqual(
      { name: file.name, media_type: file.media_type, size: file.size, sha256: file.sha256, object: file.object },
      { name: 'pixel.png', media_type: 'image/png', size: PNG.length, sha256: sha256(PNG), object: 'file' },
    );
    const meta = await call(w.url, 'GET', `/api/files/${file.id}`, { token: ada.access_token });
    assert.deepEqual(meta.body, file);
    const list = await call(w.url, 'GET', '/api/files', { token: ada.access_token });
    assert.ok(list.body.files.some((f) => f.id === file.id));

    const res = await fetch(`${w.url}/api/files/${file.id}/content`, { headers: { authorization: `Bearer ${ada.access_token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="pixel.png"; filename*=UTF-8''pixel%2Epng`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);

    const [row] = await w.sql(`select user_id from files where id = '${file.id}'`);
    const key = `files/${row.user_id}/${file.id}`;
    assert.equal(await w.r2Has(key), true);
    const del = await call(w.url, 'DELETE', `/api/files/${file.id}`, { token: ada.access_token });
    assert.equal(del.status, 204);
    envelope(assert, await call(w.url, 'GET', `/api/files/${file.id}`, { token: ada.access_token }), 404, 'not_found');
    assert.equal(await w.r2Has(key), false);
    const rows = await w.sql(`select count(*) as n from files where id = '${file.id}'`);
    assert.equal(rows[0].n, 0);
  });

  test('the type is sniffed from the bytes, never taken from the client', async () => {
    const pdf = await upload(w, ada.access_token, '/api/files/upload', [['file', PDF, 'report.bin', 'application/octet-stream']]);
    assert.equal(pdf.status, 201, pdf.text);
    assert.equal(pdf.body.media_type, 'application/pdf');
    const md = await upload(w, ada.access_token, '/api/files/upload', [['file', Buffer.from('# Notes\n'), 'notes.md', 'text/plain']]);
    assert.equal(md.body.media_type, 'text/markdown');
    const text = await fetch(`${w.url}/api/files/${md.body.id}/content`, { headers: { authorization: `Bearer ${ada.access_token}` } });
    assert.equal(text.headers.get('content-type'), 'text/markdown; charset=utf-8');
    const lying = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG, 'a.jpg', 'image/jpeg']]);
    envelope(assert, lying, 422, 'media_type_mismatch');
    const html = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG, 'page.html', 'text/html']]);
    envelope(assert, html, 415, 'unsupported_file_type');
    const svg = await upload(w, ada.access_token, '/api/files/upload', [['file', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'a.svg', 'image/svg+xml']]);
    assert.match(envelope(assert, svg, 415, 'unsupported_file_type').message, /image\/svg\+xml/);
  });

  test('bad uploads get the status that names the limit or the problem', async () => {
    const big = Buffer.concat([PNG.subarray(0, 33), Buffer.alloc(70_000), PNG.subarray(33)]);
    const tooBig = await upload(w, ada.access_token, '/api/files/upload', [['file', big, 'big.png', 'image/png']]);
    assert.match(envelope(assert, tooBig, 413, 'file_too_large').message, /MAX_FILE_SIZE \(65536 bytes\)/);
    const svg = await upload(w, ada.access_token, '/api/files/upload', [['file', Buffer.from([0, 1, 2, 3]), 'x.bin']]);
    envelope(assert, svg, 415, 'unsupported_file_type');
    const cut = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG.subarray(0, 40), 'cut.png', 'image/png']]);
    envelope(assert, cut, 422, 'invalid_image');
    const none = await upload(w, ada.access_token, '/api/files/upload', [['other', PNG, 'a.png']]);
    assert.equal(envelope(assert, none, 422).param, 'file');
    const json = await call(w.url, 'POST', '/api/files/upload', { token: ada.access_token, json: { file: 'x' } });
    envelope(assert, json, 415, 'unsupported_media_type');
    const many = await upload(w, ada.access_token, '/api/files/upload-multiple', Array.from({ length: 4 }, (_, i) => ['files', PNG, `${i}.png`]));
    assert.match(envelope(assert, many, 413, 'too_many_files').message, /MAX_FILES_PER_UPLOAD/);
    const anon = await upload(w, '', '/api/files/upload', [['file', PNG, 'a.png']]);
    assert.equal(anon.status, 401);
  });

  test('several files at once, and the per-user quota', async () => {
    const carol = await registerAndLogin(w);
    const chunk = (n) => Buffer.concat([PNG.subarray(0, 33), Buffer.alloc(n), PNG.subarray(33)]);
    const two = await upload(w, carol.access_token, '/api/files/upload-multiple', [['files', chunk(60_000), 'a.png'], ['files', chunk(60_000), 'b.png']]);
    assert.equal(two.status, 201, two.text);
    assert.deepEqual(two.body.files.map((f) => f.name), ['a.png', 'b.png']);
    const over = await upload(w, carol.access_token, '/api/files/upload', [['file', chunk(40_000), 'c.png']]);
    assert.match(envelope(assert, over, 413, 'storage_quota_exceeded').message, /FILE_STORAGE_QUOTA_BYTES \(150000 bytes\)/);
    const list = await call(w.url, 'GET', '/api/files?limit=1', { token: carol.access_token });
    assert.equal(list.body.files.length, 1);
    const next = await call(w.url, 'GET', `/api/files?limit=1&cursor=${list.body.next_cursor}`, { token: carol.access_token });
    assert.equal(next.body.files.length, 1);
    assert.notEqual(next.body.files[0].id, list.body.files[0].id);
    assert.equal(next.body.next_cursor, null);
  });

  test("another user's file is a 404 exactly like a missing one", async () => {
    const up = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG, 'mine.png']]);
    const missing = 'f'.repeat(32);
    for (const suffix of ['', '/content']) {
      const theirs = await call(w.url, 'GET', `/api/files/${up.body.id}${suffix}`, { token: bob.access_token });
      const none = await call(w.url, 'GET', `/api/files/${missing}${suffix}`, { token: bob.access_token });
      envelope(assert, theirs, 404, 'not_found');
      assert.deepEqual({ ...theirs.body.error, request_id: 0 }, { ...none.body.error, request_id: 0 });
    }
    envelope(assert, await call(w.url, 'DELETE', `/api/files/${up.body.id}`, { token: bob.access_token }), 404, 'not_found');
    assert.equal((await call(w.url, 'GET', `/api/files/${up.body.id}`, { token: ada.access_token })).status, 200);
  });

  test('hostile names are stored cleaned and never used as keys', async () => {
    const up = await upload(w, ada.access_token, '/api/files/upload', [['file', PNG, '../../etc/pa\tss wd.png']]);
    assert.equal(up.status, 201, up.text);
    assert.equal(up.body.name, 'pass wd.png');
    const res = await fetch(`${w.url}/api/files/${up.body.id}/content`, { headers: { authorization: `Bearer ${ada.access_token}` } });
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="pass wd.png"; filename*=UTF-8''pass%20wd%2Epng`);
    await res.arrayBuffer();
    const [row] = await w.sql(`select user_id from files where id = '${up.body.id}'`);
    assert.equal(await w.r2Has(`files/${row.user_id}/${up.body.id}`), true, 'the key is made of ids');
  });

  test("Web+'s paths are the same handlers", async () => {
    const up = await upload(w, ada.access_token, '/files/upload', [['file', PNG, 'web.png']]);
    assert.equal(up.status, 201, up.text);
    const meta = await call(w.url, 'GET', `/files/${up.body.id}`, { token: ada.access_token });
    assert.deepEqual(meta.body, up.body);
    const many = await upload(w, ada.access_token, '/files/upload-multiple', [['files', PNG, 'x.png']]);
    assert.equal(many.status, 201, many.text);
  });

  test("deleting the account deletes the user's objects in R2 as well as its rows", async () => {
    const dave = await registerAndLogin(w);
    const up = await upload(w, dave.access_token, '/api/files/upload', [['file', PNG, 'gone.png']]);
    const [row] = await w.sql(`select user_id from files where id = '${up.body.id}'`);
    const key = `files/${row.user_id}/${up.body.id}`;
    assert.equal(await w.r2Has(key), true);
    const del = await call(w.url, 'DELETE', '/api/users/account', { token: dave.access_token, json: { password: GOOD_PASSWORD } });
    assert.equal(del.status, 204, del.text);
    assert.equal(await w.r2Has(key), false);
    assert.equal((await w.sql(`select count(*) as n from files where user_id = '${row.user_id}'`))[0].n, 0);
  });
});
