// Server-Sent Events wire format (WHATWG HTML, "server-sent events"): fields are lines,
// an event ends with a blank line, a data value spanning lines is one `data:` line per line,
// and a line starting with ':' is a comment (used as heartbeat).

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
  /** Reconnection delay the client should use, ms. */
  retry?: number;
}

function assertSingleLine(field: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new Error(`SSE ${field} must not contain line breaks`);
}

export function encodeEvent(event: SseEvent): string {
  let out = '';
  if (event.id !== undefined) {
    // A NUL in the id makes browsers ignore the field; line breaks would forge other fields.
    assertSingleLine('id', event.id);
    if (event.id.includes('\0')) throw new Error('SSE id must not contain NUL');
    out += `id: ${event.id}\n`;
  }
  if (event.event !== undefined) {
    assertSingleLine('event', event.event);
    out += `event: ${event.event}\n`;
  }
  if (event.retry !== undefined) {
    if (!Number.isSafeInteger(event.retry) || event.retry < 0)
      throw new Error('SSE retry must be a non-negative integer');
    out += `retry: ${event.retry}\n`;
  }
  for (const line of event.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A comment line: ignored by clients, keeps proxies and idle timers from closing the stream. */
export function encodeComment(text = ''): string {
  return (
    text
      .split(/\r\n|\r|\n/)
      .map((line) => `: ${line}\n`)
      .join('') + '\n'
  );
}

/** Just a reconnection hint, with no event (what a full process answers before closing). */
export function encodeRetry(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0)
    throw new Error('SSE retry must be a non-negative integer');
  return `retry: ${ms}\n\n`;
}
