import { Flags } from '@oclif/core';
import { FsaleCommand, jwtSecretFlag } from '../cli/base.js';
import { formatDuration } from '../cli/duration.js';
import { durationFlag } from '../cli/duration-flag.js';
import { createTokenMinter, DEFAULT_TOKEN_POLICY } from '../auth/tokens.js';
import { requireJwtSecret } from '../config.js';
import { USER_ID } from '../domain/ids.js';
import { UsageError } from '../domain/errors.js';

export default class Token extends FsaleCommand {
  static override summary = 'Print a signed JWT (HS256) for a test user.';
  static override description = `The token carries sub=<user> and exp=now+ttl and is signed with FSALE_JWT_SECRET, the same secret \`fsale serve\` verifies with. Use it with curl or any load tool.`;
  static override examples = [
    'TOKEN=$(<%= config.bin %> token --user alice)',
    'curl -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(uuidgen)" -H "Content-Type: application/json" -d \'{"productId":"p1","qty":1}\' http://127.0.0.1:3000/order/buy',
    '<%= config.bin %> token --user bob --ttl 1m --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...jwtSecretFlag,
    user: Flags.string({ description: 'user id (the token subject)', required: true }),
    ttl: durationFlag({
      description: `how long until the token expires (fsale serve refuses more than its --max-token-ttl, default ${formatDuration(DEFAULT_TOKEN_POLICY.maxTtlSeconds * 1000)})`,
      default: 3_600_000,
      min: 1000,
      unit: 's',
    }),
    // Named as serve's flags of the same claims; the old names are still read, with a warning.
    'jwt-issuer': Flags.string({
      description: 'iss claim, for a serve started with --jwt-issuer [env: FSALE_JWT_ISSUER]',
      env: 'FSALE_JWT_ISSUER',
      aliases: ['issuer'],
    }),
    'jwt-audience': Flags.string({
      description: 'aud claim, for a serve started with --jwt-audience [env: FSALE_JWT_AUDIENCE]',
      env: 'FSALE_JWT_AUDIENCE',
      aliases: ['audience'],
    }),
  };

  async run(): Promise<{ user: string; token: string; expiresAt: string }> {
    const { flags } = await this.parse(Token);
    const secret = requireJwtSecret(this.settings(flags));
    if (!USER_ID.test(flags.user)) {
      throw new UsageError(
        `--user must be 1-128 letters, digits, or . _ @ -, got ${JSON.stringify(flags.user)}`,
      );
    }
    const token = createTokenMinter(secret, flags.ttl, {
      issuer: flags['jwt-issuer'],
      audience: flags['jwt-audience'],
    })(flags.user);
    this.log(token);
    return {
      user: flags.user,
      token,
      expiresAt: new Date(Date.now() + flags.ttl * 1000).toISOString(),
    };
  }
}
