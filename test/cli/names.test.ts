import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cliCommands } from '../helpers/cli-commands.js';

const SECRET = { FSALE_JWT_SECRET: 'a-test-secret-of-32-characters!!' };

describe('one name per meaning', () => {
  it('API processes are --api-workers in serve, up and demo; JWT claims are --jwt-* in serve and token', async () => {
    const commands = new Map((await cliCommands()).map((c) => [c.words.join(' '), c.flags]));
    for (const command of ['serve', 'up', 'demo'])
      expect(Object.keys(commands.get(command) ?? {}), command).toContain('api-workers');
    for (const command of ['serve', 'token'])
      expect(Object.keys(commands.get(command) ?? {}), command).toEqual(
        expect.arrayContaining(['jwt-issuer', 'jwt-audience']),
      );
    expect(Object.keys(commands.get('serve') ?? {})).not.toContain('workers');
    expect(Object.keys(commands.get('token') ?? {})).not.toContain('issuer');
  });

  it('an old name still works, with one warning line in the fsale format that names the new one', async () => {
    const result = await runCli(['token', '--user', 'dave', '--issuer', 'shop'], SECRET);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe(
      'fsale: warning: --issuer is an old name of --jwt-issuer; use --jwt-issuer\n',
    );
    const token = result.stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
      iss?: string;
    };
    expect(claims.iss).toBe('shop');
  });
});
