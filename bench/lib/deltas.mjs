// Reading a streamed chat reply's content deltas with the moment each arrived, for the
// benchmarks that compare when a delta left the provider stand-in with when it reached the
// client: OpenAI chunks (`kind` 'openai') or Threadline's chat events ('messages').

/** The content deltas of an SSE body, each `{ at, text }` (`at`: wall-clock ms, fractional). */
export async function readDeltas(res, kind) {
  const decoder = new TextDecoder();
  let buffer = '';
  const deltas = [];
  for await (const chunk of res.body) {
    const at = performance.timeOrigin + performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      if (!data || data === '[DONE]') continue;
      let j;
      try { j = JSON.parse(data); } catch { continue; }
      const text = kind === 'messages' ? (event === 'delta' ? j.text : '') : j.choices?.[0]?.delta?.content;
      if (text) deltas.push({ at, text });
    }
  }
  return deltas;
}
