// A child process of bench/sse.ts: opens N SSE connections, records when each stock event
// arrives, and when the parent sends the publish times, reports every event's lag.
import { request } from 'node:http';

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const now = () => performance.timeOrigin + performance.now();
/** remaining value -> receive times, all clients of this process */
const received = new Map<number, number[]>();
let connected = 0;
let events = 0;

function open(): void {
  const req = request(
    url ?? '',
    { agent: false, headers: { accept: 'text/event-stream' } },
    (res) => {
      res.setEncoding('utf8');
      connected += 1;
      if (connected === count) process.send?.({ type: 'connected' });
      let buffer = '';
      res.on('data', (chunk: string) => {
        const at = now();
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(block)?.[1];
          if (id === undefined || !block.includes('event: stock')) continue;
          events += 1;
          const remaining = Number(id);
          let times = received.get(remaining);
          if (times === undefined) received.set(remaining, (times = []));
          times.push(at);
        }
      });
    },
  );
  req.on('error', (error) => process.send?.({ type: 'error', message: error.message }));
  req.end();
}

// Open gradually: a burst of thousands of SYNs overflows the listen backlog.
let opened = 0;
const opener = setInterval(() => {
  for (let i = 0; i < 200 && opened < count; i++, opened++) open();
  if (opened >= count) clearInterval(opener);
}, 20);

process.on('message', (message: { type: string; published?: [number, number][] }) => {
  if (message.type !== 'report' || message.published === undefined) return;
  const publishedAt = new Map(message.published);
  const lags: number[] = [];
  for (const [remaining, times] of received) {
    const sent = publishedAt.get(remaining);
    if (sent === undefined) continue; // the snapshot sent on connect
    for (const t of times) lags.push(t - sent);
  }
  // Exit only once the report is written: millions of lags take a while to go down the pipe,
  // and exiting on a timer cut the message off (the parent then waited forever).
  process.send?.({ type: 'report', lags, events, connected }, undefined, {}, () => process.exit(0));
});
