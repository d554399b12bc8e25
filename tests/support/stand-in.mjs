// Local HTTP stand-in for the AI providers Threadline talks to (OpenAI, Anthropic,
// Gemini, Ollama's OpenAI-compatible API). It speaks each provider's real wire format
// and can be scripted to misbehave:
// delays, byte-level splits, mid-stream errors, truncation, error statuses, hang-ups.
//
// No npm dependencies: node:http only. Runs under Node 20 and 22.
//
//   import { startStandIn } from './stand-in.mjs';
//   const s = await startStandIn();            // { url, port, requests, script, reset, close, waitFor }
//   s.script({ queue: [{ status: 503, retryAfter: 1 }, {}] });
//
// CLI: node tests/support/stand-in.mjs --port 9999 [--host 127.0.0.1] [--no-record]
// Knob reference: STAND-IN.md next to this file.

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : ''))
      .filter(Boolean)
      .join(' ');
  }
  if (content && typeof content.text === 'string') return content.text;
  return '';
}

function wordCount(s) {
  return (String(s || '').match(/\S+/g) || []).length;
}

/** Split text into deltas of ~`n` words each; the deltas concatenate back to `text`. */
export function splitWords(text, n = 3) {
  const toks = String(text).match(/\s+|\S+\s*/g) || [];
  const out = [];
  for (let i = 0; i < toks.length; i += n) out.push(toks.slice(i, i + n).join(''));
  return out;
}

/**
 * The stand-in's embedding of `text`: `dims` deterministic float32 values in [-1, 1), the same
 * for the same text and length, so tests can compute what a client must receive.
 */
export function standInVector(text, dims = 8) {
  let h = 2166136261 >>> 0;
  for (const byte of Buffer.from(String(text), 'utf8')) h = Math.imul(h ^ byte, 16777619) >>> 0;
  const out = [];
  for (let i = 0; i < dims; i++) {
    h = (Math.imul(h, 1103515245) + 12345) >>> 0;
    out.push(Math.fround((h / 2 ** 32) * 2 - 1));
  }
  return out;
}

/** Standard base64 of the vector's little-endian float32s, as OpenAI's `encoding_format: base64`. */
export function float32Base64(vector) {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

function hex(seq, len) {
  // deterministic pseudo-random hex from a sequence number
  let x = (seq * 2654435761) >>> 0;
  let s = '';
  while (s.length < len) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += x.toString(16).padStart(8, '0');
  }
  return s.slice(0, len);
}

function maskKey(key) {
  // Real OpenAI echoes part of the key in its 401 message.
  if (key.length <= 10) return key;
  return key.slice(0, 3) + '*'.repeat(Math.max(4, key.length - 7)) + key.slice(-4);
}

function asList(v) {
  return v == null ? null : Array.isArray(v) ? v : [v];
}

function matchValue(want, got) {
  const list = asList(want);
  if (!list) return true;
  return list.some((w) => (w instanceof RegExp ? w.test(String(got ?? '')) : w === got));
}

function matches(beh, rec) {
  const m = beh.match || {};
  const endpoint = m.endpoint ?? 'chat';
  if (endpoint !== '*' && !matchValue(endpoint, rec.endpoint)) return false;
  if (!matchValue(m.provider, rec.provider)) return false;
  if (!matchValue(m.model, rec.model)) return false;
  if (m.stream != null && m.stream !== rec.stream) return false;
  if (m.path != null && !matchValue(m.path, rec.path)) return false;
  return true;
}

function clone(v) {
  if (v instanceof RegExp) return v;
  if (Array.isArray(v)) return v.map(clone);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = clone(x);
    return o;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

function route(method, pathname, headers) {
  let m;
  if (pathname === '/ollama' || pathname.startsWith('/ollama/')) {
    const rest = pathname.slice('/ollama'.length);
    if (rest === '/v1/chat/completions' && method === 'POST') return { provider: 'ollama', endpoint: 'chat' };
    if (rest === '/v1/models' && method === 'GET') return { provider: 'ollama', endpoint: 'models' };
    if (rest === '/v1/embeddings' && method === 'POST') return { provider: 'ollama', endpoint: 'embeddings', op: 'openai' };
    if (rest === '/api/embed' && method === 'POST') return { provider: 'ollama', endpoint: 'embeddings', op: 'embed' };
    if (rest === '/api/embeddings' && method === 'POST') return { provider: 'ollama', endpoint: 'embeddings', op: 'legacy' };
    if ((m = rest.match(/^\/v1\/models\/(.+)$/)) && method === 'GET')
      return { provider: 'ollama', endpoint: 'models', model: decodeURIComponent(m[1]), op: 'get' };
    // Ollama's native API (model management), answered from the stand-in's model state.
    const native = { 'GET /api/tags': 'tags', 'GET /api/ps': 'ps', 'GET /api/version': 'version', 'POST /api/show': 'show',
      'POST /api/pull': 'pull', 'POST /api/generate': 'generate', 'DELETE /api/delete': 'delete' }[`${method} ${rest}`];
    if (native) return { provider: 'ollama', endpoint: 'native', op: native };
    return { provider: 'ollama', endpoint: 'unknown' };
  }
  if (pathname.startsWith('/v1beta/')) {
    if (pathname === '/v1beta/models' && method === 'GET') return { provider: 'gemini', endpoint: 'models' };
    if ((m = pathname.match(/^\/v1beta\/models\/([^/:]+):(batchEmbedContents|embedContent)$/)) && method === 'POST')
      return { provider: 'gemini', endpoint: 'embeddings', model: decodeURIComponent(m[1]), op: m[2] };
    if ((m = pathname.match(/^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|countTokens)$/)) && method === 'POST') {
      const model = decodeURIComponent(m[1]);
      if (m[2] === 'countTokens') return { provider: 'gemini', endpoint: 'count', model };
      return { provider: 'gemini', endpoint: 'chat', model, op: m[2] };
    }
    if ((m = pathname.match(/^\/v1beta\/models\/([^/:]+)$/)) && method === 'GET')
      return { provider: 'gemini', endpoint: 'models', model: decodeURIComponent(m[1]), op: 'get' };
    return { provider: 'gemini', endpoint: 'unknown' };
  }
  const anthropic = headers['anthropic-version'] != null;
  if (pathname === '/v1/messages' && method === 'POST') return { provider: 'anthropic', endpoint: 'chat' };
  if (pathname === '/v1/messages/count_tokens' && method === 'POST') return { provider: 'anthropic', endpoint: 'count' };
  if (pathname === '/v1/chat/completions' && method === 'POST') return { provider: 'openai', endpoint: 'chat' };
  if (pathname === '/v1/embeddings' && method === 'POST') return { provider: 'openai', endpoint: 'embeddings', op: 'openai' };
  if (pathname === '/v1/models' && method === 'GET') return { provider: anthropic ? 'anthropic' : 'openai', endpoint: 'models' };
  if ((m = pathname.match(/^\/v1\/models\/(.+)$/)) && method === 'GET')
    return { provider: anthropic ? 'anthropic' : 'openai', endpoint: 'models', model: decodeURIComponent(m[1]), op: 'get' };
  if (pathname.startsWith('/v1/') || pathname === '/v1') return { provider: anthropic ? 'anthropic' : 'openai', endpoint: 'unknown' };
  return { provider: null, endpoint: 'unknown' };
}

// ---------------------------------------------------------------------------
// Default model lists
// ---------------------------------------------------------------------------

const DEFAULT_MODELS = {
  openai: ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1-mini', 'o3-mini'],
  anthropic: ['claude-sonnet-4-20250514', 'claude-3-5-haiku-20241022'],
  gemini: ['gemini-2.0-flash', 'gemini-1.5-pro'],
  ollama: ['llama3.2:latest', 'qwen2.5:0.5b'],
};

function modelObject(provider, id) {
  switch (provider) {
    case 'openai':
      return { id, object: 'model', created: 1715367049, owned_by: 'system' };
    case 'ollama':
      return { id, object: 'model', created: 1730000000, owned_by: 'library' };
    case 'anthropic':
      return { type: 'model', id, display_name: id.replace(/-\d{8}$/, '').replace(/-/g, ' '), created_at: '2025-05-22T00:00:00Z' };
    case 'gemini': {
      const bare = id.replace(/^models\//, '');
      return {
        name: `models/${bare}`,
        version: '001',
        displayName: bare.replace(/-/g, ' ').replace(/\b\w/g, (c) => c.toUpperCase()),
        description: `Stand-in for ${bare}`,
        inputTokenLimit: 1048576,
        outputTokenLimit: 8192,
        supportedGenerationMethods: ['generateContent', 'countTokens'],
        temperature: 1,
        topP: 0.95,
        topK: 40,
        maxTemperature: 2,
      };
    }
  }
  return { id };
}

function modelList(provider, ids) {
  const objs = ids.map((id) => modelObject(provider, id));
  switch (provider) {
    case 'openai':
    case 'ollama':
      return { object: 'list', data: objs };
    case 'anthropic':
      return { data: objs, has_more: false, first_id: objs[0]?.id ?? null, last_id: objs.at(-1)?.id ?? null };
    case 'gemini':
      return { models: objs };
  }
  return objs;
}

// ---------------------------------------------------------------------------
// Provider error bodies
// ---------------------------------------------------------------------------

const ANTHROPIC_TYPES = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error',
  504: 'timeout_error', 529: 'overloaded_error',
};
const ANTHROPIC_MESSAGES = {
  invalid_request_error: 'Invalid request',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error:
    'Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
  overloaded_error: 'Overloaded',
};
const GEMINI_STATUS = {
  400: ['INVALID_ARGUMENT', 'Request contains an invalid argument.'],
  401: ['UNAUTHENTICATED', 'Request had invalid authentication credentials.'],
  403: ['PERMISSION_DENIED', 'The caller does not have permission'],
  404: ['NOT_FOUND', 'Requested entity was not found.'],
  429: ['RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.'],
  500: ['INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting'],
  503: ['UNAVAILABLE', 'The model is overloaded. Please try again later.'],
  504: ['DEADLINE_EXCEEDED', 'The request timed out. Please try again.'],
  529: ['UNAVAILABLE', 'The model is overloaded. Please try again later.'],
};

function openaiError(status, ctx, b) {
  const model = ctx.rec.model ?? 'gpt-4o';
  let e;
  if (status === 401) {
    const key = ctx.key ?? '';
    e = key
      ? { message: `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' }
      : { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.", type: 'invalid_request_error', param: null, code: null };
  } else if (status === 429 && b.insufficientQuota) {
    e = { message: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' };
  } else if (status === 429) {
    e = { message: `Rate limit reached for ${model} in organization org-standin on tokens per min (TPM): Limit 30000, Used 29500, Requested 1200. Please try again in ${b.retryAfter ?? 2}s. Visit https://platform.openai.com/account/rate-limits to learn more.`, type: 'tokens', param: null, code: 'rate_limit_exceeded' };
  } else if (status === 404) {
    e = { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: null, code: 'model_not_found' };
  } else if (status === 403) {
    e = { message: 'Country, region, or territory not supported', type: 'request_forbidden', param: null, code: 'unsupported_country_region_territory' };
  } else if (status === 500) {
    e = { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null };
  } else if (status === 503 || status === 529) {
    e = { message: 'That model is currently overloaded with other requests. You can retry your request, or contact us through our help center at help.openai.com if the error persists.', type: 'server_error', param: null, code: null };
  } else {
    e = { message: status >= 500 ? 'The server had an error while processing your request. Sorry about that!' : 'Invalid request.', type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code: null };
  }
  if (b.errorType) e.type = b.errorType;
  if (b.errorMessage) e.message = b.errorMessage;
  return { error: e };
}

function ollamaError(status, ctx, b) {
  const type = b.errorType ?? (status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error');
  const message =
    b.errorMessage ??
    (status === 404 ? `model "${ctx.rec.model ?? 'unknown'}" not found, try pulling it first` : status === 400 ? 'invalid request' : status === 429 ? 'server busy, please try again.  maximum pending requests exceeded' : 'internal server error');
  return { error: { message, type, param: null, code: null } };
}

function anthropicError(status, ctx, b) {
  const type = b.errorType ?? ANTHROPIC_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
  let message = b.errorMessage ?? ANTHROPIC_MESSAGES[type] ?? 'Error';
  if (!b.errorMessage && type === 'not_found_error' && ctx.rec.model) message = `model: ${ctx.rec.model}`;
  if (!b.errorMessage && type === 'authentication_error' && !ctx.key) message = 'x-api-key header is required';
  return { type: 'error', error: { type, message }, request_id: ctx.requestId };
}

function geminiError(status, ctx, b) {
  const [st, msg] = GEMINI_STATUS[status] ?? [status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT', status >= 500 ? 'Internal error' : 'Invalid request'];
  const error = { code: status === 529 ? 503 : status, message: b.errorMessage ?? msg, status: b.errorType ?? st };
  if (status === 404 && !b.errorMessage && ctx.rec.model)
    error.message = `models/${ctx.rec.model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`;
  if (status === 429 && b.retryAfter != null && /^\d+$/.test(String(b.retryAfter)))
    error.details = [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${b.retryAfter}s` }];
  return { error };
}

function errorBody(provider, status, ctx, b = {}) {
  switch (provider) {
    case 'openai': return openaiError(status, ctx, b);
    case 'ollama': return ollamaError(status, ctx, b);
    case 'anthropic': return anthropicError(status, ctx, b);
    case 'gemini': return geminiError(status, ctx, b);
  }
  return { error: { message: `HTTP ${status}` } };
}

// ---------------------------------------------------------------------------
// Writer: honours splitAt (global byte offsets), drains, stops when the client left
// ---------------------------------------------------------------------------

class Out {
  constructor(res, life, b) {
    this.res = res;
    this.life = life;
    this.offset = 0;
    this.splits = [...new Set((b.splitAt || []).map(Number).filter((n) => Number.isInteger(n) && n > 0))].sort((a, c) => a - c);
    this.splitDelayMs = b.splitDelayMs ?? 2;
  }
  get closed() {
    return this.life.closed;
  }
  async pause() {
    if (this.splitDelayMs > 0) await sleep(this.splitDelayMs);
    else await tick();
  }
  async write(data) {
    if (this.closed) return false;
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
    const start = this.offset;
    const end = start + buf.length;
    if (start > 0 && this.splits.includes(start)) await this.pause();
    const cuts = this.splits.filter((s) => s > start && s < end);
    let prev = start;
    const pieces = [];
    for (const c of cuts) {
      pieces.push(buf.subarray(prev - start, c - start));
      prev = c;
    }
    pieces.push(buf.subarray(prev - start));
    for (let k = 0; k < pieces.length; k++) {
      if (k > 0) await this.pause();
      if (this.closed) return false;
      const ok = this.res.write(pieces[k]);
      this.offset += pieces[k].length;
      if (!ok && !this.closed) {
        await new Promise((r) => {
          const done = () => {
            this.res.off('drain', done);
            this.res.off('close', done);
            r();
          };
          this.res.on('drain', done);
          this.res.on('close', done);
        });
      }
    }
    return !this.closed;
  }
}

// ---------------------------------------------------------------------------
// Request understanding (per provider)
// ---------------------------------------------------------------------------

/** A user turn's text with its media named after it: `What is this? [image/png]`. */
function withMedia(text, tags) {
  return [text, ...tags.map((t) => `[${t}]`)].filter(Boolean).join(' ');
}

function conversation(provider, body) {
  // → { lastUser, promptText }
  const texts = [];
  let lastUser = '';
  if (!body || typeof body !== 'object') return { lastUser, promptText: '' };
  if (provider === 'gemini') {
    if (body.systemInstruction) texts.push(textOf(body.systemInstruction.parts));
    for (const c of Array.isArray(body.contents) ? body.contents : []) {
      const t = textOf(c?.parts);
      texts.push(t);
      if (!c?.role || c.role === 'user') lastUser = withMedia(t, mediaOf(provider, c?.parts));
    }
  } else {
    if (provider === 'anthropic' && body.system != null) texts.push(textOf(body.system));
    for (const m of Array.isArray(body.messages) ? body.messages : []) {
      const t = textOf(m?.content);
      texts.push(t);
      if (m?.role === 'user') lastUser = withMedia(t, mediaOf(provider, m?.content));
    }
  }
  return { lastUser, promptText: texts.join(' ') };
}

const OPENAI_ROLES = ['system', 'assistant', 'user', 'function', 'tool', 'developer'];

// ---------------------------------------------------------------------------
// Images and documents: each provider's shapes, checked as the real APIs check them
// ---------------------------------------------------------------------------

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MB = 1024 * 1024;

/** The media type the bytes of `b64` start with (null when unknown or not base64). */
function sniff(b64) {
  if (typeof b64 !== 'string' || !BASE64.test(b64) || b64.length % 4 === 1) return null;
  const head = Buffer.from(b64.slice(0, 24), 'base64');
  if (head.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  if (head.subarray(0, 3).toString('latin1') === 'GIF') return 'image/gif';
  if (head.subarray(0, 4).toString('latin1') === 'RIFF' && head.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (head.subarray(0, 5).toString('latin1') === '%PDF-') return 'application/pdf';
  return null;
}

/** `data:<type>;base64,<data>` → { type, data } (null for anything else). */
function dataUrl(url) {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(String(url ?? ''));
  return m ? { type: m[1].toLowerCase(), data: m[2] } : null;
}

/** The media of a message's content or parts, as "type" tags (what the default reply names). */
function mediaOf(provider, content) {
  const tags = [];
  for (const p of Array.isArray(content) ? content : []) {
    if (!p || typeof p !== 'object') continue;
    if (provider === 'gemini') {
      const inline = p.inlineData ?? p.inline_data;
      const file = p.fileData ?? p.file_data;
      if (inline) tags.push(inline.mimeType ?? inline.mime_type);
      if (file) tags.push(`${file.mimeType ?? file.mime_type} ${file.fileUri ?? file.file_uri}`);
    } else if (provider === 'anthropic') {
      if (p.type === 'image' || p.type === 'document') {
        tags.push(p.source?.type === 'url' ? `${p.type} ${p.source.url}` : p.source?.media_type);
      }
    } else if (p.type === 'image_url') {
      const url = p.image_url?.url;
      tags.push(dataUrl(url)?.type ?? url);
    } else if (p.type === 'file') {
      tags.push(dataUrl(p.file?.file_data)?.type ?? sniff(p.file?.file_data) ?? 'file');
    }
  }
  return tags;
}

/** The real APIs' answers to bad image and document input (null when all is well). */
function validateMedia(provider, body) {
  if (provider === 'gemini') {
    let total = 0;
    for (const [i, c] of (body.contents ?? []).entries()) {
      for (const [j, p] of (Array.isArray(c?.parts) ? c.parts : []).entries()) {
        const inline = p?.inlineData ?? p?.inline_data;
        const file = p?.fileData ?? p?.file_data;
        if (inline) {
          const key = p.inlineData ? 'inlineData' : 'inline_data';
          if (!(inline.mimeType ?? inline.mime_type)) return { status: 400, errorMessage: `* GenerateContentRequest.contents[${i}].parts[${j}].${key}.mime_type: mime_type is not specified\n` };
          const data = String(inline.data ?? '');
          if (data.startsWith('data:') || !BASE64.test(data)) return { status: 400, errorMessage: `Invalid value at 'contents[${i}].parts[${j}].${key}.data' (TYPE_BYTES), Base64 decoding failed for "${data.slice(0, 20)}"` };
          total += data.length;
        }
        if (file && !(file.fileUri ?? file.file_uri)) return { status: 400, errorMessage: `* GenerateContentRequest.contents[${i}].parts[${j}].file_data.file_uri: file_uri is not specified\n` };
      }
    }
    if (total > 20 * MB) return { status: 400, errorMessage: 'Request payload size exceeds the limit: 20971520 bytes.' };
    return null;
  }
  for (const [i, m] of (body.messages ?? []).entries()) {
    if (!Array.isArray(m?.content)) continue;
    for (const [j, p] of m.content.entries()) {
      const at = provider === 'anthropic' ? `messages.${i}.content.${j}` : `messages[${i}].content[${j}]`;
      if (provider === 'anthropic') {
        if (p?.type !== 'image' && p?.type !== 'document') continue;
        const src = p.source ?? {};
        if (src.type === 'url') {
          if (!/^https:\/\//.test(String(src.url ?? ''))) return { status: 400, errorMessage: `${at}.${p.type}.source.url: Input should be a valid URL` };
          continue;
        }
        if (src.type !== 'base64') return { status: 400, errorMessage: `${at}.${p.type}.source: Input tag '${src.type}' found using 'type' does not match any of the expected tags: 'base64', 'url'` };
        const allowed = p.type === 'image' ? IMAGE_TYPES : ['application/pdf'];
        if (!allowed.includes(src.media_type)) return { status: 400, errorMessage: `${at}.${p.type}.source.base64.media_type: Input should be ${allowed.map((t) => `'${t}'`).join(', ')}` };
        const data = String(src.data ?? '');
        if (data.startsWith('data:') || !BASE64.test(data)) return { status: 400, errorMessage: `${at}.${p.type}.source.base64.data: The base64 data is invalid (a data: URL prefix is not allowed)` };
        if (p.type === 'image' && data.length > 5 * MB) return { status: 400, errorMessage: `${at}.image.source.base64: image exceeds 5 MB maximum: ${data.length} bytes > 5242880 bytes` };
        if (sniff(data) !== src.media_type) return { status: 400, errorMessage: `${at}.${p.type}.source.base64: The ${p.type} was specified using the ${src.media_type} media type, but does not appear to be a valid ${src.media_type} ${p.type}` };
        continue;
      }
      // OpenAI and OpenAI-compatible servers
      if (p?.type === 'text') continue;
      if (p?.type === 'image_url') {
        if (m.role !== 'user') return { status: 400, errorMessage: `Invalid 'messages[${i}]'. Image URLs are only allowed for messages with role 'user', but this message with role '${m.role}' contains an image URL.`, param: `messages[${i}]`, code: 'invalid_value' };
        const url = String(p.image_url?.url ?? '');
        const d = dataUrl(url);
        if (d) {
          if (!IMAGE_TYPES.includes(d.type) || sniff(d.data) !== d.type) return { status: 400, errorMessage: "You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].", param: null, code: 'invalid_image_format' };
          if (d.data.length * 0.75 > 20 * MB) return { status: 400, errorMessage: 'Image exceeds the 20 MB limit.', code: 'image_too_large' };
        } else if (!/^https?:\/\//.test(url)) {
          return { status: 400, errorMessage: `Invalid image URL: '${at}.image_url.url'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the 'data:' prefix.`, param: `${at}.image_url.url`, code: 'invalid_value' };
        }
        continue;
      }
      if (p?.type === 'file' && provider === 'openai') {
        const raw = String(p.file?.file_data ?? '');
        const data = dataUrl(raw)?.data ?? raw;
        if (!p.file?.file_id && (!raw || sniff(data) !== 'application/pdf')) return { status: 400, errorMessage: `Invalid file data: '${at}.file.file_data'. Expected a base64-encoded PDF.`, param: `${at}.file.file_data`, code: 'invalid_value' };
        continue;
      }
      return { status: 400, errorMessage: `Invalid content part type '${p?.type}' at ${at}.`, param: at, code: 'invalid_value' };
    }
  }
  return null;
}

function validate(provider, body, parseError) {
  // → null or { status, body-ish override via errorMessage/errorType/param/code }
  if (parseError) {
    const msg = {
      openai: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
      ollama: 'invalid character in request body',
      anthropic: 'There was an error parsing the body of your request.',
      gemini: 'Invalid JSON payload received. Unexpected token.',
    }[provider];
    return { status: 400, errorMessage: msg };
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { status: 400, errorMessage: 'Request body must be a JSON object.' };
  if (provider === 'openai') {
    if (!body.model) return { status: 400, errorMessage: 'you must provide a model parameter' };
    if (!Array.isArray(body.messages)) return { status: 400, errorMessage: "Missing required parameter: 'messages'.", param: 'messages', code: 'missing_required_parameter' };
    const bad = body.messages.findIndex((m) => !OPENAI_ROLES.includes(m?.role));
    if (bad >= 0)
      return { status: 400, errorMessage: `Invalid value: '${body.messages[bad]?.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`, param: `messages[${bad}].role`, code: 'invalid_value' };
  } else if (provider === 'ollama') {
    if (!body.model) return { status: 400, errorMessage: 'model is required' };
    if (!Array.isArray(body.messages) || body.messages.length === 0) return { status: 400, errorMessage: 'invalid message format' };
  } else if (provider === 'anthropic') {
    for (const f of ['model', 'max_tokens', 'messages']) if (body[f] == null) return { status: 400, errorMessage: `${f}: Field required` };
    if (!Array.isArray(body.messages)) return { status: 400, errorMessage: 'messages: Input should be a valid list' };
    if (body.messages.length === 0) return { status: 400, errorMessage: 'messages: at least one message is required' };
    const bad = body.messages.findIndex((m) => m?.role !== 'user' && m?.role !== 'assistant');
    if (bad >= 0) {
      const role = body.messages[bad]?.role;
      return {
        status: 400,
        errorMessage: role === 'system'
          ? 'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.'
          : `messages.${bad}.role: Input should be 'user' or 'assistant'`,
      };
    }
  } else if (provider === 'gemini') {
    if (!Array.isArray(body.contents) || body.contents.length === 0) return { status: 400, errorMessage: '* GenerateContentRequest.contents: contents is not specified\n' };
    const bad = body.contents.find((c) => c?.role != null && c.role !== 'user' && c.role !== 'model' && c.role !== 'function');
    if (bad) return { status: 400, errorMessage: 'Please use a valid role: user, model.' };
  }
  return validateMedia(provider, body);
}

// ---------------------------------------------------------------------------
// Embeddings: OpenAI (and Ollama's OpenAI-compatible) /v1/embeddings, Ollama's native
// /api/embed and legacy /api/embeddings, Gemini's batchEmbedContents and embedContent
// ---------------------------------------------------------------------------

/** The texts of an embeddings request, in order (null when the body has none). */
function embeddingTexts(provider, r, body) {
  if (!body) return null;
  if (provider === 'gemini') {
    const reqs = r.op === 'embedContent' ? [body] : body.requests;
    if (!Array.isArray(reqs)) return null;
    return reqs.map((q) => textOf(q?.content?.parts));
  }
  if (r.op === 'legacy') return typeof body.prompt === 'string' ? [body.prompt] : null;
  if (typeof body.input === 'string') return [body.input];
  if (Array.isArray(body.input)) return body.input.map((t) => (typeof t === 'string' ? t : JSON.stringify(t)));
  return null;
}

function validateEmbeddings(provider, r, body, parseError) {
  if (parseError) return { status: 400, errorMessage: 'We could not parse the JSON body of your request.' };
  if (provider === 'gemini') {
    const reqs = r.op === 'embedContent' ? [body] : body?.requests;
    if (!Array.isArray(reqs) || reqs.length === 0) return { status: 400, errorMessage: '* BatchEmbedContentsRequest.requests: requests is not specified\n' };
    if (reqs.length > 100) return { status: 400, errorMessage: '* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n' };
    for (const q of reqs) {
      if (!Array.isArray(q?.content?.parts) || q.content.parts.length === 0) return { status: 400, errorMessage: '* EmbedContentRequest.content: contents is not specified\n' };
      if (r.op === 'batchEmbedContents' && q.model !== `models/${r.model}`)
        return { status: 400, errorMessage: `* BatchEmbedContentsRequest.requests[].model: model "${q.model}" must be "models/${r.model}", the model of the URL\n` };
    }
    return null;
  }
  if (!body?.model) return { status: 400, errorMessage: provider === 'ollama' ? 'model is required' : 'you must provide a model parameter' };
  const texts = embeddingTexts(provider, r, body);
  if (!texts || texts.length === 0) return { status: 400, errorMessage: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param: 'input' };
  if (texts.length > 2048) return { status: 400, errorMessage: "'$.input' is invalid: at most 2048 inputs.", param: 'input' };
  if (texts.some((t) => t === '')) return { status: 400, errorMessage: "'$.input' is invalid: an input must not be empty.", param: 'input' };
  if (body.encoding_format != null && !['float', 'base64'].includes(body.encoding_format))
    return { status: 400, errorMessage: `Invalid value: '${body.encoding_format}'. Supported values are: 'float' and 'base64'.`, param: 'encoding_format' };
  return null;
}

function embeddingsBody(provider, r, body, b) {
  const texts = embeddingTexts(provider, r, body);
  const asked = provider === 'gemini' ? (r.op === 'embedContent' ? body : body.requests?.[0])?.outputDimensionality : body.dimensions;
  const dims = Number(asked ?? b.dimensions ?? 8);
  const vectors = texts.map((t) => standInVector(t, dims));
  const tokens = texts.reduce((n, t) => n + wordCount(t), 0);
  const model = b.responseModel ?? r.model ?? body.model;
  if (provider === 'gemini') {
    return r.op === 'embedContent' ? { embedding: { values: vectors[0] } } : { embeddings: vectors.map((values) => ({ values })) };
  }
  if (r.op === 'embed') return { model, embeddings: vectors, total_duration: 1200000, load_duration: 500000, prompt_eval_count: tokens };
  if (r.op === 'legacy') return { embedding: vectors[0] };
  // Ollama's OpenAI-compatible endpoint answers floats whatever encoding_format says.
  const base64 = provider === 'openai' && body.encoding_format === 'base64';
  const data = vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? float32Base64(v) : v }));
  // `shuffle`: answer out of order, as `index` allows.
  if (b.shuffle) data.reverse();
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

// ---------------------------------------------------------------------------
// Stream plans: pre events, content chunk events, post events, error event
// ---------------------------------------------------------------------------

function sse(data, { event, crlf } = {}) {
  const nl = crlf ? '\r\n' : '\n';
  return (event ? `event: ${event}${nl}` : '') + `data: ${data}${nl}${nl}`;
}

// A whole 1×1 PNG: what `images: true` makes a model draw.
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

/** The pictures a behaviour makes the model return: `images: true` (one 1×1 PNG) or
 * `images: [{ mimeType, data }]` (base64 without a prefix). */
function scriptedImages(b) {
  if (!b.images) return [];
  if (b.images === true) return [{ mimeType: 'image/png', data: PNG_1X1 }];
  return b.images.map((i) => ({ mimeType: i.mimeType ?? 'image/png', data: i.data ?? PNG_1X1 }));
}

/** OpenAI-compatible servers that return pictures (OpenRouter's shape): `images` entries. */
function openaiImages(b) {
  return scriptedImages(b).map((i, index) => ({ type: 'image_url', image_url: { url: `data:${i.mimeType};base64,${i.data}` }, index }));
}

function openaiPlan(ctx) {
  const { b, deltas, usage, rec, provider } = ctx;
  const ollama = provider === 'ollama';
  const extras = !!b.extras;
  const includeUsage = !!ctx.body?.stream_options?.include_usage;
  const base = {
    id: ctx.id,
    object: 'chat.completion.chunk',
    created: ctx.created,
    model: ctx.responseModel,
    ...(ollama ? { system_fingerprint: 'fp_ollama' } : { service_tier: 'default', system_fingerprint: 'fp_standin01' }),
  };
  let n = 0;
  const chunk = (choices, more = {}) => {
    const o = { ...base, choices, ...more };
    if (extras && !ollama) {
      if (!('usage' in more)) o.usage = null;
      o.obfuscation = hex(++n + ctx.seq, 6);
    } else if (includeUsage && b.usageNull && !('usage' in more)) o.usage = null;
    return sse(JSON.stringify(o));
  };
  const choice = (delta, finish = null) => (ollama ? { index: 0, delta, finish_reason: finish } : { index: 0, delta, logprobs: null, finish_reason: finish });
  const finish = b.finishReason ?? 'stop';
  const pre = [];
  if (!ollama) pre.push(chunk([choice({ role: 'assistant', content: b.roleContentNull ? null : '', refusal: null })]));
  const post = [];
  const images = openaiImages(b);
  if (images.length) post.push(chunk([choice({ images })]));
  post.push(chunk([choice(ollama && deltas.length === 0 ? { role: 'assistant', content: '' } : ollama ? { content: '' } : {}, finish)]));
  if (includeUsage) {
    post.push(chunk([], { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } }));
  }
  post.push(sse('[DONE]'));
  const ms = b.midStreamError || {};
  const errObj = ollama
    ? { error: { message: ms.message ?? 'an error was encountered while running the model', type: ms.type ?? 'api_error', param: null, code: null } }
    : { error: { message: ms.message ?? 'The server had an error while processing your request. Sorry about that!', type: ms.type ?? 'server_error', param: null, code: ms.code ?? null } };
  return {
    contentType: 'text/event-stream; charset=utf-8',
    pre,
    chunk: (i, d) => chunk([choice(ollama && i === 0 ? { role: 'assistant', content: d } : { content: d })]),
    post,
    error: () => sse(JSON.stringify(errObj), { event: ms.form === 'event' ? 'error' : undefined }),
    extra: () => ': keep-alive\n\n',
    comment: () => ': keep-alive\n\n',
  };
}

function anthropicPlan(ctx) {
  const { b, deltas, usage } = ctx;
  const extras = !!b.extras;
  const ev = (event, obj) => sse(typeof obj === 'string' ? obj : JSON.stringify(obj), { event });
  const startUsage = { input_tokens: usage.input, output_tokens: 1 };
  if (extras) Object.assign(startUsage, { cache_creation_input_tokens: 0, cache_read_input_tokens: 0, service_tier: 'standard' });
  const message = { id: ctx.id, type: 'message', role: 'assistant', content: [], model: ctx.responseModel, stop_reason: null, stop_sequence: null, usage: startUsage };
  if (extras) message.x_standin_unknown = { nested: [1, 2] };
  const pre = [
    ev('message_start', { type: 'message_start', message }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', '{"type": "ping"}'),
  ];
  const endUsage = { output_tokens: usage.output };
  if (extras) Object.assign(endUsage, { input_tokens: usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  const post = [
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: b.finishReason ?? 'end_turn', stop_sequence: null }, usage: endUsage }),
    ev('message_stop', { type: 'message_stop' }),
  ];
  const ms = b.midStreamError || {};
  const type = ms.type ?? 'overloaded_error';
  return {
    contentType: 'text/event-stream; charset=utf-8',
    pre,
    chunk: (i, d) => {
      const o = { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: d } };
      if (extras) o.x_standin_unknown = true;
      return ev('content_block_delta', o);
    },
    post,
    error: () => ev('error', { type: 'error', error: { type, message: ms.message ?? ANTHROPIC_MESSAGES[type] ?? 'Error' } }),
    extra: () => ev('ping', '{"type": "ping"}'),
    comment: () => ': keep-alive\n\n',
  };
}

function geminiPlan(ctx) {
  const { b, deltas, usage } = ctx;
  const extras = !!b.extras;
  const sseMode = ctx.query.alt === 'sse';
  const crlf = b.crlf ?? true;
  const nl = crlf ? '\r\n' : '\n';
  const images = scriptedImages(b);
  // An image model streams its text, then each picture in a chunk of its own, then the finish.
  const mode = deltas.length === 0 || images.length ? 'separate' : b.finishReasonOn ?? 'last';
  const finish = b.finishReason ?? 'STOP';
  const resp = (text, fin, full) => {
    const cand = { content: { parts: [{ text }], role: 'model' } };
    if (fin) cand.finishReason = finish;
    if (extras) cand.avgLogprobs = -0.0123;
    const um = full
      ? { promptTokenCount: usage.input, candidatesTokenCount: usage.output, totalTokenCount: usage.input + usage.output }
      : { promptTokenCount: usage.input, totalTokenCount: usage.input };
    if (extras) um.promptTokensDetails = [{ modality: 'TEXT', tokenCount: usage.input }];
    const o = { candidates: [cand], usageMetadata: um, modelVersion: ctx.responseModel, responseId: ctx.id };
    if (extras) o.x_standin_unknown = { nested: true };
    return o;
  };
  let elements = 0; // JSON-array mode: elements written so far
  const frame = (obj) => {
    if (sseMode) return sse(JSON.stringify(obj), { crlf });
    const s = (elements === 0 ? '[' : `,${nl}`) + JSON.stringify(obj, null, 2);
    elements++;
    return s;
  };
  const ms = b.midStreamError || {};
  const errObj = { error: { code: ms.code ?? 503, message: ms.message ?? 'The model is overloaded. Please try again later.', status: ms.status ?? (ms.type && /^[A-Z_]+$/.test(ms.type) ? ms.type : 'UNAVAILABLE') } };
  return {
    contentType: sseMode ? 'text/event-stream' : 'application/json; charset=UTF-8',
    pre: [],
    chunk: (i, d, final) => {
      const fin = mode === 'every' || (mode === 'last' && final);
      return frame(resp(d, fin, fin || final));
    },
    // 'post' is computed lazily because of JSON-array framing
    postFn: () => {
      const out = [];
      for (const i of images) {
        out.push(frame({ candidates: [{ content: { parts: [{ inlineData: { mimeType: i.mimeType, data: i.data } }], role: 'model' } }], usageMetadata: { promptTokenCount: usage.input, totalTokenCount: usage.input }, modelVersion: ctx.responseModel, responseId: ctx.id }));
      }
      if (mode === 'separate') out.push(frame(resp('', true, true)));
      if (!sseMode) out.push(elements === 0 ? '[]' : `${nl}]`);
      return out;
    },
    error: () => (sseMode ? sse(JSON.stringify(errObj), { crlf }) : frame(errObj) + `${nl}]`),
    extra: () => (sseMode ? `: keep-alive${nl}${nl}` : ''),
    comment: () => (sseMode ? `: keep-alive${nl}${nl}` : ''),
  };
}

// ---------------------------------------------------------------------------
// Ollama's native API: what is on disk, what is loaded, what the registry can pull
// ---------------------------------------------------------------------------

const OLLAMA_DETAILS = (family, parameterSize, quantization) => ({
  parent_model: '', format: 'gguf', family, families: [family], parameter_size: parameterSize, quantization_level: quantization,
});
// name → { size, digest, details, layers (sizes of the blobs a pull downloads) }
const OLLAMA_REGISTRY = {
  'llama3.2:latest': { size: 2019393189, digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72', details: OLLAMA_DETAILS('llama', '3.2B', 'Q4_K_M'), layers: [2019377376, 1429, 7711, 6016, 96, 561] },
  'qwen2.5:0.5b': { size: 397821319, digest: 'a8b0c51577010a279d933d14c2a8ab4b268079d44c5c8830c0a93900f1827c67', details: OLLAMA_DETAILS('qwen2', '494.03M', 'Q4_K_M'), layers: [397807936, 1482, 11343, 488] },
  'phi3:mini': { size: 2176178913, digest: '4f222292793889a9a40a020799cfd28d53f3e01af25d48e06c5e708610fc47e9', details: OLLAMA_DETAILS('phi3', '3.8B', 'Q4_0'), layers: [2176177120, 1084, 148, 78] },
  'tinyllama:latest': { size: 637700138, digest: '2644915ede352ea7bdfaff0bfac0be74c719d5d5202acb63a6fb095b52f394a4', details: OLLAMA_DETAILS('llama', '1B', 'Q4_0'), layers: [637699456, 98, 31, 483] },
};
const OLLAMA_LOCAL = ['llama3.2:latest', 'qwen2.5:0.5b'];

const ollamaName = (name) => {
  const n = String(name ?? '').trim();
  const last = n.split('/').pop();
  return last.includes(':') ? n : `${n}:latest`;
};

// keep_alive → milliseconds (null: forever); Ollama's default is five minutes.
function keepAliveMs(v) {
  if (v == null) return 5 * 60_000;
  if (typeof v === 'number') return v < 0 ? null : v * 1000;
  const m = String(v).match(/^(-?[0-9.]+)(ms|s|m|h)?$/);
  if (!m) return 5 * 60_000;
  const n = Number(m[1]);
  if (n < 0) return null;
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'];
}

function ollamaState() {
  return { local: new Set(OLLAMA_LOCAL), loaded: new Map() };
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

// `ollamaAtRoot`: serve Ollama's OpenAI-compatible API at `/v1` of a bare address, as a real
// Ollama at `http://localhost:11434` does (this stand-in then speaks only Ollama).
export async function startStandIn({ port = 0, host = '127.0.0.1', record = true, maxRecorded = 10000, ollamaAtRoot = false } = {}) {
  const requests = [];
  const state = { queue: [], defaults: [], keys: {}, seq: 0, ollama: ollamaState() };

  function script(opts = {}) {
    if (opts == null || typeof opts !== 'object') throw new TypeError('script(opts) expects an object');
    const { queue, default: def, keys, append, ...rest } = opts;
    if (queue !== undefined) {
      if (!Array.isArray(queue)) throw new TypeError('script: queue must be an array');
      const items = queue.map((q) => clone(q ?? {}));
      state.queue = append ? state.queue.concat(items) : items;
    }
    if (def !== undefined) state.defaults = def == null ? [] : (Array.isArray(def) ? def : [def]).map(clone);
    else if (Object.keys(rest).length) state.defaults = [clone(rest)];
    if (keys !== undefined) state.keys = { ...(keys || {}) };
    return { queued: state.queue.length };
  }

  function reset() {
    requests.length = 0;
    state.queue = [];
    state.defaults = [];
    state.keys = {};
    state.ollama = ollamaState();
  }

  function pick(rec) {
    for (let i = 0; i < state.queue.length; i++) {
      const q = state.queue[i];
      if (!matches(q, rec)) continue;
      const times = q.times ?? 1;
      if (times > 1) q.times = times - 1;
      else state.queue.splice(i, 1);
      return { b: q, source: 'queue' };
    }
    for (const d of state.defaults) if (matches(d, rec)) return { b: d, source: 'default' };
    return { b: {}, source: 'builtin' };
  }

  async function waitFor(pred, { timeoutMs = 2000, intervalMs = 10 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = requests.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error('stand-in waitFor: timed out');
      await sleep(intervalMs);
    }
  }

  const sendJson = (res, status, obj, headers = {}) => {
    const s = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), ...headers });
    res.end(s);
  };

  async function control(req, res, url, raw) {
    const p = url.pathname;
    if (p === '/__requests' && req.method === 'GET') {
      const prov = url.searchParams.get('provider');
      return sendJson(res, 200, prov ? requests.filter((r) => r.provider === prov) : requests);
    }
    if (p === '/__requests' && req.method === 'DELETE') {
      requests.length = 0;
      return sendJson(res, 200, { ok: true });
    }
    if (p === '/__script' && req.method === 'POST') {
      try {
        const r = script(raw.length ? JSON.parse(raw.toString('utf8')) : {});
        return sendJson(res, 200, { ok: true, ...r });
      } catch (e) {
        return sendJson(res, 400, { ok: false, error: String(e.message || e) });
      }
    }
    if (p === '/__reset' && req.method === 'POST') {
      reset();
      return sendJson(res, 200, { ok: true });
    }
    if (p === '/__health') return sendJson(res, 200, { ok: true });
    return sendJson(res, 404, { ok: false, error: `no control endpoint ${req.method} ${p}` });
  }

  async function handle(req, res) {
    const receivedAt = Date.now();
    const url = new URL(req.url, 'http://stand-in');
    const life = { closed: false, selfDestroyed: false };
    let rec = null;
    res.on('close', () => {
      life.closed = true;
      if (rec && !res.writableEnded && !life.selfDestroyed) {
        rec.clientClosedEarly = true;
        if (rec.outcome === 'pending' || rec.outcome === 'streaming') rec.outcome = 'client-closed';
      }
    });
    res.on('error', () => {});
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);

    if (url.pathname.startsWith('/__')) return control(req, res, url, raw);

    const query = Object.fromEntries(url.searchParams);
    const r = route(req.method, ollamaAtRoot && !url.pathname.startsWith('/__') ? `/ollama${url.pathname}` : url.pathname, req.headers);
    const text = raw.toString('utf8');
    let body = text;
    let parseError = false;
    if (raw.length) {
      try {
        body = JSON.parse(text);
      } catch {
        parseError = true;
      }
    } else body = null;

    const seq = ++state.seq;
    const provider = r.provider;
    const json = !parseError && body && typeof body === 'object' ? body : null;
    rec = {
      seq,
      provider,
      endpoint: r.endpoint,
      model: r.model ?? (json && typeof json.model === 'string' ? json.model : null),
      stream: r.endpoint === 'chat' ? (provider === 'gemini' ? r.op === 'streamGenerateContent' : json?.stream === true) : false,
      method: req.method,
      path: url.pathname,
      query,
      headers: { ...req.headers },
      body,
      receivedAt,
      status: null,
      outcome: 'pending',
      completed: false,
      clientClosedEarly: false,
      chunksSent: 0,
      chunkTimes: [],
      eventsSent: 0,
      scripted: null,
    };
    if (record) {
      requests.push(rec);
      if (requests.length > maxRecorded) requests.splice(0, requests.length - maxRecorded);
    }

    if (life.closed) {
      rec.clientClosedEarly = true;
      rec.outcome = 'client-closed';
      return;
    }

    const { b, source } = pick(rec);
    rec.scripted = source;
    const requestId = provider === 'anthropic' ? `req_011Standin${hex(seq, 16)}` : `req_${hex(seq, 32)}`;
    const baseHeaders = (() => {
      switch (provider) {
        case 'openai': return { 'x-request-id': requestId, 'openai-version': '2020-10-01', 'openai-processing-ms': '42', 'openai-organization': 'org-standin' };
        case 'anthropic': return { 'request-id': requestId, 'anthropic-organization-id': '00000000-0000-4000-8000-standin00000' };
        case 'gemini': return { server: 'scaffolding on HTTPServer2', vary: 'Origin, X-Origin, Referer' };
        default: return {};
      }
    })();
    const ctx = { req, res, rec, b, provider, body: json, query, seq, requestId, key: null, life };
    const out = new Out(res, life, b);

    const finish = (outcome) => {
      if (life.closed) return;
      res.end();
      rec.completed = true;
      rec.outcome = outcome;
    };

    const sendBody = async (status, payload, headers = {}, outcome = 'ok') => {
      const s = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
      rec.status = status;
      if (life.closed) return;
      res.writeHead(status, {
        'content-type': b.contentType ?? 'application/json',
        'content-length': Buffer.byteLength(s),
        ...baseHeaders,
        ...headers,
        ...(b.headers || {}),
      });
      await out.write(s);
      finish(outcome);
    };

    const sendError = async (status, opts = {}) => {
      const bb = { ...b, ...opts };
      const headers = {};
      if (bb.retryAfter != null) headers['retry-after'] = String(bb.retryAfter);
      if (bb.retryAfterMs != null) headers['retry-after-ms'] = String(bb.retryAfterMs);
      if (bb.shouldRetry != null) headers['x-should-retry'] = String(!!bb.shouldRetry);
      else if (provider === 'anthropic') headers['x-should-retry'] = String(status === 408 || status === 409 || status === 429 || status >= 500);
      if (provider === 'openai' && status === 429 && !bb.insufficientQuota) {
        Object.assign(headers, { 'x-ratelimit-limit-tokens': '30000', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': `${bb.retryAfter ?? 2}s` });
      }
      let payload = bb.body !== undefined && !opts.ignoreBody ? bb.body : errorBody(provider, status, ctx, bb);
      if (payload && typeof payload === 'object' && bb.body === undefined && provider === 'openai' && (opts.param || opts.code)) {
        payload.error.param = opts.param ?? null;
        payload.error.code = opts.code ?? null;
      }
      if (provider === 'gemini' && r.op === 'streamGenerateContent' && query.alt !== 'sse' && (bb.body === undefined || opts.ignoreBody)) payload = [payload];
      await sendBody(status, payload, headers, 'error-status');
    };

    try {
      if (b.firstByteDelayMs > 0) await sleep(b.firstByteDelayMs);
      if (life.closed) return;

      if (b.hangUp) {
        life.selfDestroyed = true;
        rec.outcome = 'hung-up';
        req.socket.destroy();
        return;
      }

      if (r.endpoint === 'unknown' || !provider) {
        const msg = `Invalid URL (${req.method} ${url.pathname})`;
        const p = provider ?? 'openai';
        const payload =
          p === 'anthropic' ? { type: 'error', error: { type: 'not_found_error', message: 'Not Found' }, request_id: requestId }
          : p === 'gemini' ? { error: { code: 404, message: `Method not found: ${req.method} ${url.pathname}`, status: 'NOT_FOUND' } }
          : { error: { message: msg, type: 'invalid_request_error', param: null, code: null } };
        return await sendBody(404, payload, {}, 'not-found');
      }

      // --- auth -----------------------------------------------------------
      if (provider !== 'ollama') {
        let key = '';
        if (provider === 'openai') {
          const a = req.headers.authorization || '';
          key = /^Bearer\s+/i.test(a) ? a.replace(/^Bearer\s+/i, '').trim() : '';
        } else if (provider === 'anthropic') key = String(req.headers['x-api-key'] || '');
        else if (provider === 'gemini') key = String(req.headers['x-goog-api-key'] || query.key || '');
        ctx.key = key;
        const want = state.keys[provider];
        const valid = key !== '' && key !== 'bad-key' && (want == null || key === want);
        if (!valid) {
          rec.authFailed = true;
          if (provider === 'gemini') {
            if (!key)
              return await sendError(403, { ignoreBody: true, errorMessage: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", errorType: 'PERMISSION_DENIED', retryAfter: undefined });
            const invalid = {
              error: {
                code: 400,
                message: 'API key not valid. Please pass a valid API key.',
                status: 'INVALID_ARGUMENT',
                details: [
                  { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } },
                  { '@type': 'type.googleapis.com/google.rpc.LocalizedMessage', locale: 'en-US', message: 'API key not valid. Please pass a valid API key.' },
                ],
              },
            };
            const arrayMode = r.op === 'streamGenerateContent' && query.alt !== 'sse';
            return await sendBody(400, arrayMode ? [invalid] : invalid, {}, 'error-status');
          }
          return await sendError(401, { ignoreBody: true, errorType: undefined, errorMessage: undefined, retryAfter: undefined, insufficientQuota: false });
        }
        if (provider === 'anthropic') {
          const v = req.headers['anthropic-version'];
          if (v == null) return await sendError(400, { ignoreBody: true, errorType: 'invalid_request_error', errorMessage: 'anthropic-version: header is required' });
          if (v !== '2023-06-01') return await sendError(400, { ignoreBody: true, errorType: 'invalid_request_error', errorMessage: `anthropic-version: "${v}" is not a valid version` });
        }
      }

      if (r.endpoint === 'native') return await ollamaNative(ctx, r.op, sendBody, out, finish);

      // --- scripted overrides ---------------------------------------------
      if (b.status != null && b.status !== 200) return await sendError(Number(b.status));
      if (b.rawEvents) return await streamRaw(ctx, out, baseHeaders, finish);
      if (b.body !== undefined) return await sendBody(Number(b.status ?? 200), b.body, {}, 'ok');

      // --- model lists / count ---------------------------------------------
      if (r.endpoint === 'models') {
        const ids = b.models ?? DEFAULT_MODELS[provider];
        if (r.op === 'get') {
          const bare = provider === 'gemini' ? r.model.replace(/^models\//, '') : r.model;
          if (!ids.includes(bare)) return await sendError(404);
          return await sendBody(200, modelObject(provider, bare));
        }
        return await sendBody(200, modelList(provider, ids));
      }

      if (r.endpoint === 'embeddings') {
        if (b.validate !== false) {
          const v = validateEmbeddings(provider, r, json, parseError);
          if (v) return await sendError(v.status, { ...v, ignoreBody: true });
        }
        return await sendBody(200, embeddingsBody(provider, r, json, b));
      }

      const conv = conversation(provider, json);
      if (r.endpoint === 'count') {
        if (b.validate !== false) {
          const v = validate(provider, body, parseError);
          if (v && !(provider === 'anthropic' && /max_tokens/.test(v.errorMessage))) return await sendError(v.status, { ...v, ignoreBody: true });
        }
        const n = wordCount(conv.promptText);
        return await sendBody(200, provider === 'gemini' ? { totalTokens: n } : { input_tokens: n });
      }

      // --- chat -------------------------------------------------------------
      if (b.validate !== false) {
        const v = validate(provider, body, parseError);
        if (v) return await sendError(v.status, { ...v, ignoreBody: true, errorType: provider === 'gemini' ? 'INVALID_ARGUMENT' : undefined });
      }

      const deltas = Array.isArray(b.chunks) ? b.chunks.map(String) : splitWords(b.text ?? `Echo: ${conv.lastUser}`, b.chunkWords ?? 3);
      const replyText = deltas.join('');
      ctx.deltas = deltas;
      ctx.usage = { input: b.promptTokens ?? wordCount(conv.promptText), output: b.completionTokens ?? wordCount(replyText) };
      ctx.created = b.created ?? Math.floor(receivedAt / 1000);
      ctx.responseModel = b.responseModel ?? rec.model ?? 'unknown';
      ctx.id =
        b.id ??
        (provider === 'anthropic' ? `msg_01Standin${hex(seq, 14)}` : provider === 'gemini' ? `standin${hex(seq, 16)}` : `chatcmpl-standin${hex(seq, 20)}`);

      if (!rec.stream) return await sendBody(200, nonStreamBody(ctx, replyText));
      return await streamPlan(ctx, out, baseHeaders, finish);
    } catch (e) {
      if (!res.headersSent && !life.closed) {
        sendJson(res, 500, { error: { message: `stand-in internal error: ${e?.stack || e}` } });
        rec.outcome = 'stand-in-error';
      } else if (!life.closed) {
        res.destroy();
      }
    }
  }

  // Ollama's native endpoints as Ollama answers them: errors are `{"error":"…"}`; a pull
  // streams NDJSON progress and reports a failure as an `{"error"}` line at HTTP 200.
  // Knobs: `status` (+`errorMessage`), `pullError: {afterLines, message}`, `chunkDelayMs`.
  async function ollamaNative(ctx, op, sendBody, out, finish) {
    const { b, body, rec } = ctx;
    const st = state.ollama;
    const fail = (status, error) => sendBody(status, { error }, {}, 'error-status');
    if (b.status != null && b.status !== 200) return fail(Number(b.status), b.errorMessage ?? 'internal server error');
    const now = Date.now();
    const entry = (name) => {
      const m = OLLAMA_REGISTRY[name] ?? { size: 1000, digest: hex(name.length, 64), details: OLLAMA_DETAILS('unknown', '1B', 'Q4_0') };
      return { name, model: name, modified_at: '2026-10-01T12:00:00.000000000Z', size: m.size, digest: m.digest, details: m.details };
    };
    for (const [name, l] of st.loaded) if (l.expiresAt != null && l.expiresAt <= now) st.loaded.delete(name);
    if (op === 'version') return sendBody(200, { version: '0.12.6' });
    if (op === 'tags') return sendBody(200, { models: [...st.local].map(entry) });
    if (op === 'ps') {
      return sendBody(200, {
        models: [...st.loaded].map(([name, l]) => ({
          ...entry(name),
          expires_at: l.expiresAt == null ? '2318-01-01T00:00:00.000000000Z' : new Date(l.expiresAt).toISOString(),
          size_vram: entry(name).size,
        })),
      });
    }
    const name = ollamaName(body?.model ?? body?.name);
    if (!body || typeof body !== 'object' || !(body.model ?? body.name)) return fail(400, 'model is required');
    rec.model = name;
    if (op === 'show') {
      if (!st.local.has(name)) return fail(404, `model '${name}' not found`);
      return sendBody(200, { modelfile: `FROM ${name}`, parameters: '', template: '{{ .Prompt }}', details: entry(name).details, model_info: { 'general.context_length': 131072 }, capabilities: ['completion'] });
    }
    if (op === 'delete') {
      if (!st.local.has(name)) return fail(404, `model '${name}' not found`);
      st.local.delete(name);
      st.loaded.delete(name);
      rec.status = 200;
      ctx.res.writeHead(200, { 'content-length': 0 });
      return finish('ok');
    }
    if (op === 'generate') {
      if (!st.local.has(name)) return fail(404, `model '${name}' not found`);
      const created_at = new Date(now).toISOString();
      const ms = keepAliveMs(body.keep_alive);
      if (ms === 0) {
        st.loaded.delete(name);
        return sendBody(200, { model: name, created_at, response: '', done: true, done_reason: 'unload' });
      }
      st.loaded.set(name, { expiresAt: ms == null ? null : now + ms });
      return sendBody(200, { model: name, created_at, response: '', done: true, done_reason: 'load' });
    }
    // pull
    const known = OLLAMA_REGISTRY[name];
    const lines = [{ status: 'pulling manifest' }];
    if (!known) lines.push({ error: 'pull model manifest: file does not exist' });
    else {
      for (const [i, total] of known.layers.entries()) {
        const digest = `sha256:${hex(i + 1, 8)}${known.digest.slice(8)}`;
        const status = `pulling ${digest.slice(7, 19)}`;
        lines.push({ status, digest, total });
        if (total > 1_000_000) lines.push({ status, digest, total, completed: Math.floor(total / 2) });
        lines.push({ status, digest, total, completed: total });
      }
      lines.push({ status: 'verifying sha256 digest' }, { status: 'writing manifest' }, { status: 'success' });
    }
    if (b.pullError) lines.splice(Math.min(b.pullError.afterLines ?? 1, lines.length), lines.length, { error: b.pullError.message ?? 'max retries exceeded: connection reset' });
    if (body.stream === false) {
      const last = lines[lines.length - 1];
      if (last.error) return fail(500, last.error);
      st.local.add(name);
      return sendBody(200, { status: 'success' });
    }
    rec.status = 200;
    ctx.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' });
    for (const line of lines) {
      if (b.chunkDelayMs > 0) await sleep(b.chunkDelayMs);
      if (!(await out.write(JSON.stringify(line) + '\n'))) return;
      rec.chunksSent++;
    }
    if (!lines[lines.length - 1].error) st.local.add(name);
    return finish(lines[lines.length - 1].error ? 'stream-error' : 'ok');
  }

  function nonStreamBody(ctx, text) {
    const { provider, usage, b } = ctx;
    const extras = !!b.extras;
    if (provider === 'openai' || provider === 'ollama') {
      const ollama = provider === 'ollama';
      const o = {
        id: ctx.id,
        object: 'chat.completion',
        created: ctx.created,
        model: ctx.responseModel,
        choices: [
          ollama
            ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: b.finishReason ?? 'stop' }
            : { index: 0, message: { role: 'assistant', content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: b.finishReason ?? 'stop' },
        ],
        usage: ollama
          ? { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output }
          : {
              prompt_tokens: usage.input,
              completion_tokens: usage.output,
              total_tokens: usage.input + usage.output,
              prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
              completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
            },
        ...(ollama ? {} : { service_tier: 'default' }),
        system_fingerprint: ollama ? 'fp_ollama' : 'fp_standin01',
      };
      const images = openaiImages(b);
      if (images.length) o.choices[0].message.images = images;
      if (extras) o.x_standin_unknown = { nested: [1] };
      return o;
    }
    if (provider === 'anthropic') {
      const u = { input_tokens: usage.input, output_tokens: usage.output };
      if (extras) Object.assign(u, { cache_creation_input_tokens: 0, cache_read_input_tokens: 0, service_tier: 'standard' });
      const o = {
        id: ctx.id,
        type: 'message',
        role: 'assistant',
        model: ctx.responseModel,
        content: [{ type: 'text', text }],
        stop_reason: b.finishReason ?? 'end_turn',
        stop_sequence: null,
        usage: u,
      };
      if (extras) o.x_standin_unknown = true;
      return o;
    }
    // gemini
    const parts = [{ text }, ...scriptedImages(b).map((i) => ({ inlineData: { mimeType: i.mimeType, data: i.data } }))];
    const cand = { content: { parts, role: 'model' }, finishReason: b.finishReason ?? 'STOP' };
    if (extras) cand.avgLogprobs = -0.0123;
    const o = {
      candidates: [cand],
      usageMetadata: { promptTokenCount: usage.input, candidatesTokenCount: usage.output, totalTokenCount: usage.input + usage.output },
      modelVersion: ctx.responseModel,
      responseId: ctx.id,
    };
    if (extras) {
      o.usageMetadata.promptTokensDetails = [{ modality: 'TEXT', tokenCount: usage.input }];
      o.x_standin_unknown = { nested: true };
    }
    return o;
  }

  async function beginStream(ctx, contentType, baseHeaders) {
    const { res, rec, b } = ctx;
    rec.status = Number(b.status ?? 200);
    rec.outcome = 'streaming';
    const headers = { 'content-type': contentType, 'cache-control': 'no-cache', ...baseHeaders, ...(b.headers || {}) };
    if (b.retryAfter != null) headers['retry-after'] = String(b.retryAfter);
    res.writeHead(rec.status, headers);
    res.flushHeaders();
  }

  async function writeEvent(ctx, out, s) {
    if (!s) return true;
    const ok = await out.write(s);
    if (ok) ctx.rec.eventsSent++;
    return ok;
  }

  async function streamRaw(ctx, out, baseHeaders, finish) {
    const { b, rec } = ctx;
    await beginStream(ctx, b.contentType ?? 'text/event-stream', baseHeaders);
    for (let i = 0; i < b.rawEvents.length; i++) {
      if (i > 0 && b.chunkDelayMs > 0) await sleep(b.chunkDelayMs);
      if (!(await writeEvent(ctx, out, b.rawEvents[i]))) return;
      rec.chunksSent++;
      rec.chunkTimes.push(Date.now());
    }
    finish('ok');
  }

  async function streamPlan(ctx, out, baseHeaders, finish) {
    const { b, rec, provider, deltas, res, life } = ctx;
    const plan = provider === 'anthropic' ? anthropicPlan(ctx) : provider === 'gemini' ? geminiPlan(ctx) : openaiPlan(ctx);
    await beginStream(ctx, plan.contentType, baseHeaders);
    const n = deltas.length;
    const ms = b.midStreamError;
    const errAt = ms ? Math.max(0, Math.min(Number(ms.afterChunks ?? 0), n)) : null;
    const cutAt = b.truncateAfterChunks != null ? Math.max(0, Math.min(Number(b.truncateAfterChunks), n)) : null;
    const cut = async () => {
      if (b.truncateHard) {
        life.selfDestroyed = true;
        rec.outcome = 'truncated-hard';
        res.destroy();
        return;
      }
      finish('truncated');
    };
    const midError = async () => {
      if (!(await writeEvent(ctx, out, plan.error()))) return;
      finish('mid-stream-error');
    };

    if (b.extras) if (!(await writeEvent(ctx, out, plan.comment()))) return;
    for (const e of plan.pre) if (!(await writeEvent(ctx, out, e))) return;

    for (let i = 0; i < n; i++) {
      if (errAt === i) return await midError();
      if (cutAt === i) return await cut();
      if (i > 0 && b.chunkDelayMs > 0) await sleep(b.chunkDelayMs);
      if (life.closed) return;
      const final = i === n - 1 && errAt == null && cutAt == null;
      if (!(await writeEvent(ctx, out, plan.chunk(i, deltas[i], final)))) return;
      rec.chunksSent++;
      rec.chunkTimes.push(Date.now());
      if (b.extras && i % 2 === 0) if (!(await writeEvent(ctx, out, plan.extra()))) return;
    }
    if (errAt != null) return await midError();
    if (cutAt != null) return await cut();
    const post = plan.postFn ? plan.postFn() : plan.post;
    if (post.some(Boolean) && n > 0 && b.chunkDelayMs > 0) await sleep(b.chunkDelayMs);
    for (const e of post) if (!(await writeEvent(ctx, out, e))) return;
    finish('ok');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      try {
        res.destroy();
      } catch {}
    });
  });
  server.on('connection', (s) => s.setNoDelay(true));
  server.keepAliveTimeout = 5000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${shownHost}:${actualPort}`,
    port: actualPort,
    requests,
    script,
    reset,
    waitFor,
    server,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

const isMain = (() => {
  try {
    return process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();

if (isMain) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] != null ? args[i + 1] : dflt;
  };
  const s = await startStandIn({
    port: Number(opt('--port', process.env.STAND_IN_PORT ?? 9999)),
    host: opt('--host', '127.0.0.1'),
    record: !args.includes('--no-record'),
  });
  console.log(`stand-in listening on ${s.url}`);
  const stop = async () => {
    await s.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
