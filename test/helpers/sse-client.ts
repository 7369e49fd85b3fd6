import { request, type IncomingMessage } from 'node:http';

export interface ReceivedEvent {
  id?: string;
  event?: string;
  data: string;
  retry?: number;
}

export interface SseConnection {
  status: number;
  headers: IncomingMessage['headers'];
  events: ReceivedEvent[];
  /** Raw text received, comments included. */
  raw: () => string;
  ended: Promise<void>;
  waitFor: (predicate: (e: ReceivedEvent) => boolean) => Promise<ReceivedEvent>;
  close: () => void;
}

function parseBlock(block: string): ReceivedEvent | undefined {
  const event: ReceivedEvent = { data: '' };
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') data.push(value);
    else if (field === 'id') event.id = value;
    else if (field === 'event') event.event = value;
    else if (field === 'retry') event.retry = Number(value);
  }
  if (data.length === 0) return event.retry !== undefined ? event : undefined;
  event.data = data.join('\n');
  return event;
}

/** A small SSE client that records every event (a dedicated socket, outside the shared agent). */
export function connectSse(
  url: string,
  headers: Record<string, string> = {},
  /** Another loopback source address (127.0.0.2, ...) plays another client. */
  localAddress?: string,
): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        headers: { accept: 'text/event-stream', ...headers },
        agent: false,
        ...(localAddress === undefined ? {} : { localAddress }),
      },
      (res) => {
        res.setEncoding('utf8');
        let buffer = '';
        let raw = '';
        const events: ReceivedEvent[] = [];
        const waiters: {
          predicate: (e: ReceivedEvent) => boolean;
          resolve: (e: ReceivedEvent) => void;
        }[] = [];
        let endResolve: () => void = () => undefined;
        const ended = new Promise<void>((r) => (endResolve = r));
        res.on('data', (chunk: string) => {
          raw += chunk;
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const event = parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event === undefined) continue;
            events.push(event);
            for (let i = waiters.length - 1; i >= 0; i--) {
              const waiter = waiters[i];
              if (waiter?.predicate(event) === true) {
                waiters.splice(i, 1);
                waiter.resolve(event);
              }
            }
          }
        });
        res.on('end', endResolve);
        res.on('close', endResolve);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          raw: () => raw,
          ended,
          waitFor: (predicate) => {
            const found = events.find(predicate);
            if (found !== undefined) return Promise.resolve(found);
            return new Promise((r) => waiters.push({ predicate, resolve: r }));
          },
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
