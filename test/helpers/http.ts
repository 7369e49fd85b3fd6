import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | undefined>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

/** Keep-alive sockets shared by a test file; many concurrent requests queue on them. */
export const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export function send(baseUrl: string, req: HttpRequest): Promise<HttpResponse> {
  const url = new URL(req.path, baseUrl);
  const payload =
    req.body === undefined
      ? undefined
      : typeof req.body === 'string'
        ? req.body
        : JSON.stringify(req.body);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers ?? {}))
    if (value !== undefined) headers[name] = value;
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const r = httpRequest(url, { method: req.method ?? 'GET', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(payload);
  });
}
