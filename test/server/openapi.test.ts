// GET /openapi.json: a valid OpenAPI 3 document that lists every route Fastify serves with its
// methods, every problem type of the one table, and, for real answers of the API, the status,
// problem type and body each one got.
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv } from 'ajv';
import type { OpenAPIV3 } from 'openapi-types';
import { beforeAll, describe, expect, it } from 'vitest';
import { DOCS_PATH } from '../../src/server/openapi.js';
import { PROBLEMS, PROBLEM_CONTENT_TYPE } from '../../src/server/problems.js';
import { send, type HttpRequest } from '../helpers/http.js';
import { buy, freshKey, seed, startApi, tokenFor, type RunningApi } from '../helpers/sale.js';
import { useTestServices } from '../helpers/services.js';

type Method = 'get' | 'head' | 'post' | 'put' | 'delete' | 'patch' | 'options';

/**
 * Every (path, methods) of Fastify's route tree (`printRoutes`), paths in OpenAPI form. Each
 * line is a node: its depth is its indent (4 characters a level), its path is its parent's
 * plus its own segment, and the methods in parentheses are the routes it ends.
 */
function registeredRoutes(tree: string): Map<string, string[]> {
  const routes = new Map<string, string[]>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([ │]*)(?:[└├]── )(\S+)(?: \(([^)]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    const methods = match[3];
    if (methods === undefined) continue;
    const path = stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    routes.set(
      path,
      methods.split(', ').map((m) => m.toLowerCase()),
    );
  }
  return routes;
}

describe('the OpenAPI document', () => {
  let api: RunningApi;
  let document: OpenAPIV3.Document;
  beforeAll(async () => {
    const s = await useTestServices();
    await seed(s, { productId: 'doc', stock: 5, perUserLimit: 1 });
    await seed(s, { productId: 'gone', stock: 0 });
    await seed(s, { productId: 'later', stock: 5, startsAt: new Date(Date.now() + 3_600_000) });
    // The demo route too: every route the API can have.
    api = await startApi(s, { demoAuth: true });
    const response = await send(api.url, { path: '/openapi.json' });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    document = JSON.parse(response.body) as OpenAPIV3.Document;
  });

  it('is valid OpenAPI 3', async () => {
    expect(document.openapi).toMatch(/^3\./);
    // validate() dereferences in place: give it a copy.
    await expect(SwaggerParser.validate(structuredClone(document))).resolves.toBeDefined();
    // The validator has teeth: a response without its description is refused.
    const broken = structuredClone(document);
    const healthz = broken.paths['/healthz']?.get?.responses['200'] as { description?: string };
    delete healthz.description;
    await expect(SwaggerParser.validate(broken)).rejects.toThrow();
  });

  it('has every route Fastify registered, with every method, and nothing else', () => {
    // The docs page (/docs, Swagger UI's own routes) shows the document; it is not the API.
    const routes = new Map(
      [...registeredRoutes(api.app.printRoutes({ commonPrefix: false }))].filter(
        ([path]) => path !== DOCS_PATH && !path.startsWith(`${DOCS_PATH}/`),
      ),
    );
    expect(routes.size).toBeGreaterThanOrEqual(11);
    expect(routes.get('/order/buy')).toEqual(['post']);
    expect(routes.get('/order/{id}/stream')).toEqual(['get', 'head']);
    const documented = new Map(
      Object.entries(document.paths).map(([path, item]) => [
        path,
        Object.keys(item ?? {}).filter((k) => k !== 'parameters'),
      ]),
    );
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(routes));
    // Every operation says what it answers, beyond a bare default.
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of documented.get(path) ?? []) {
        const operation = item?.[method as Method];
        expect(Object.keys(operation?.responses ?? {}), `${method} ${path}`).not.toEqual([]);
        expect(operation?.summary, `${method} ${path}`).toBeTruthy();
      }
    }
  });

  it('names every problem type of the table, with its status, in components.schemas.Problem', () => {
    const problem = document.components?.schemas?.Problem as OpenAPIV3.SchemaObject;
    const type = problem.properties?.type as OpenAPIV3.SchemaObject;
    expect((type.enum ?? []).map(String).sort()).toEqual(
      Object.keys(PROBLEMS)
        .map((t) => `urn:fsale:problem:${t}`)
        .sort(),
    );
    // A problem a route answers is listed under that route's status for it.
    const text = JSON.stringify(document.paths);
    for (const [name, { status }] of Object.entries(PROBLEMS)) {
      // Any path can answer it (the not-found handler): no route lists it.
      if (name === 'not_found') continue;
      expect(text, name).toContain(`urn:fsale:problem:${name}`);
      expect(documentedTypes(document, status).has(`urn:fsale:problem:${name}`), name).toBe(true);
    }
  });

  it('answers a method a path does not have with not_found, the type the table has for it (no 405)', async () => {
    for (const [method, path] of [
      ['DELETE', '/order/buy'],
      ['PUT', '/products/doc'],
      ['PATCH', '/healthz'],
      ['POST', '/openapi.json'],
      ['PROPFIND', '/'],
    ] as const) {
      const response = await send(api.url, { method, path });
      expect(response.status, `${method} ${path}`).toBe(PROBLEMS.not_found.status);
      expect(JSON.parse(response.body), `${method} ${path}`).toMatchObject({
        type: 'urn:fsale:problem:not_found',
      });
    }
  });

  // Real answers: each one's status is documented for its route, and its body (a problem of a
  // documented type, or the documented JSON) validates against the document's schema.
  const alice = tokenFor('alice');
  const cases: [string, string, string, () => HttpRequest | Promise<HttpRequest>][] = [
    ['an accepted buy', 'post', '/order/buy', () => buyRequest(alice, 'doc')],
    ['a buy over the per-user limit', 'post', '/order/buy', () => buyRequest(alice, 'doc')],
    ['a buy of a sold-out product', 'post', '/order/buy', () => buyRequest(alice, 'gone')],
    ['a buy before the sale opens', 'post', '/order/buy', () => buyRequest(alice, 'later')],
    ['a buy of an unknown product', 'post', '/order/buy', () => buyRequest(alice, 'nope')],
    ['a buy without a token', 'post', '/order/buy', () => buyRequest('', 'doc')],
    [
      'a buy without an Idempotency-Key',
      'post',
      '/order/buy',
      () => ({ ...buyRequest(alice, 'doc'), headers: { authorization: `Bearer ${alice}` } }),
    ],
    [
      'a buy with a bad body',
      'post',
      '/order/buy',
      () => ({ ...buyRequest(alice, 'doc'), body: { productId: 'doc', qty: 0 } }),
    ],
    [
      'a buy that is not JSON',
      'post',
      '/order/buy',
      () => ({
        ...buyRequest(alice, 'doc'),
        headers: { ...buyRequest(alice, 'doc').headers, 'content-type': 'text/csv' },
        body: 'a,b',
      }),
    ],
    ['a product', 'get', '/products/{id}', () => ({ path: '/products/doc' })],
    ['an unknown product', 'get', '/products/{id}', () => ({ path: '/products/nope' })],
    ['a bad product id', 'get', '/products/{id}', () => ({ path: '/products/a%20b' })],
    ['an order', 'get', '/order/{id}', async () => ({ path: await orderPath(), ...asCarol() })],
    [
      "someone else's order",
      'get',
      '/order/{id}',
      async () => ({ path: await orderPath(), headers: { authorization: `Bearer ${alice}` } }),
    ],
    [
      'an unknown order',
      'get',
      '/order/{id}',
      () => ({ path: '/order/00000000-0000-4000-8000-000000000000', ...asCarol() }),
    ],
    ['an order without a token', 'get', '/order/{id}', async () => ({ path: await orderPath() })],
    ['liveness', 'get', '/healthz', () => ({ path: '/healthz' })],
    ['readiness', 'get', '/readyz', () => ({ path: '/readyz' })],
    ['a demo token', 'get', '/demo/token', () => ({ path: '/demo/token?user=bob' })],
    ['a bad demo user', 'get', '/demo/token', () => ({ path: '/demo/token?user=' })],
    ['the storefront', 'get', '/', () => ({ path: '/' })],
    ['its script', 'get', '/app.js', () => ({ path: '/app.js' })],
    ['the stock stream of an unknown product', 'get', '/stock/{id}/stream', () => stock('nope')],
  ];
  /** What each case must answer, so that each one proves the status it is named for. */
  const expected: Record<string, number> = {
    'an accepted buy': 202,
    'a buy over the per-user limit': PROBLEMS.limit_reached.status,
    'a buy of a sold-out product': PROBLEMS.sold_out.status,
    'a buy before the sale opens': PROBLEMS.not_open.status,
    'a buy of an unknown product': PROBLEMS.product_not_found.status,
    'a buy without a token': PROBLEMS.unauthorized.status,
    'a buy without an Idempotency-Key': PROBLEMS.idempotency_key_missing.status,
    'a buy with a bad body': PROBLEMS.bad_request.status,
    'a buy that is not JSON': PROBLEMS.unsupported_media_type.status,
    'an unknown product': PROBLEMS.product_not_found.status,
    'a bad product id': PROBLEMS.bad_request.status,
    "someone else's order": PROBLEMS.order_not_found.status,
    'an unknown order': PROBLEMS.order_not_found.status,
    'an order without a token': PROBLEMS.unauthorized.status,
    'a bad demo user': PROBLEMS.bad_request.status,
    'the stock stream of an unknown product': PROBLEMS.product_not_found.status,
  };
  const carol = tokenFor('carol');
  const asCarol = () => ({ headers: { authorization: `Bearer ${carol}` } });
  let carolsOrder: string | undefined;
  async function orderPath(): Promise<string> {
    if (carolsOrder === undefined) {
      const accepted = await buy(api, { token: carol, productId: 'doc', key: freshKey() });
      carolsOrder = (JSON.parse(accepted.body) as { statusUrl: string }).statusUrl;
    }
    return carolsOrder;
  }
  const stock = (id: string): HttpRequest => ({ path: `/stock/${id}/stream` });

  it.each(cases)('%s: its status and body are as documented', async (name, method, path, make) => {
    const request = await make();
    const response = await send(api.url, { ...request, method: method.toUpperCase() });
    expect(response.status, response.body).toBe(expected[name] ?? 200);
    const operation = document.paths[path]?.[method as Method];
    const documented = operation?.responses[String(response.status)] as
      OpenAPIV3.ResponseObject | undefined;
    expect(
      documented,
      `${method} ${path} answered ${response.status}: ${response.body}`,
    ).toBeDefined();
    const mediaType = String(response.headers['content-type']).split(';')[0] ?? '';
    const content = documented?.content?.[mediaType];
    expect(content, `${mediaType} for ${response.status}`).toBeDefined();
    const body: unknown =
      mediaType.endsWith('json') && response.body !== ''
        ? JSON.parse(response.body)
        : response.body;
    const ajv = new Ajv({ strict: false, validateFormats: false });
    const validate = ajv.compile(content?.schema ?? {});
    expect(validate(body), JSON.stringify({ body, errors: validate.errors })).toBe(true);
    if (mediaType === PROBLEM_CONTENT_TYPE) {
      const type = (body as { type: string }).type.replace('urn:fsale:problem:', '');
      expect(response.status).toBe(PROBLEMS[type as keyof typeof PROBLEMS].status);
    }
  });
});

function buyRequest(token: string, productId: string): HttpRequest {
  return {
    method: 'POST',
    path: '/order/buy',
    headers: { authorization: `Bearer ${token}`, 'idempotency-key': freshKey() },
    body: { productId, qty: 1 },
  };
}

/** The problem types a document lists under `status`, over all its operations. */
function documentedTypes(document: OpenAPIV3.Document, status: number): Set<string> {
  const types = new Set<string>();
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item ?? {}) as OpenAPIV3.OperationObject[]) {
      const response = operation.responses[String(status)] as OpenAPIV3.ResponseObject | undefined;
      const schema = response?.content?.[PROBLEM_CONTENT_TYPE]?.schema as
        OpenAPIV3.SchemaObject | undefined;
      const type = schema?.properties?.type as OpenAPIV3.SchemaObject | undefined;
      for (const t of type?.enum ?? []) types.add(String(t));
    }
  }
  return types;
}
