// The baseline of bench/buy.ts and bench/generator.ts: a bare Fastify POST route answering 202
// with a tiny JSON body, with the same server options the API uses for parsing, and the
// product route `fsale flood` checks before it sends. Prints its URL and waits.
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 4096 });
app.post('/order/buy', async (_request, reply) => reply.code(202).send({ ok: true }));
app.get('/products/:id', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('no address');
console.log(`listening on http://127.0.0.1:${address.port}`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
