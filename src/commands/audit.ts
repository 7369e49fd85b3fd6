import { Flags } from '@oclif/core';
import { FsaleCommand, gatewayUrlFlag, serviceFlags } from '../cli/base.js';
import { outputStyle, renderTable } from '../cli/colors.js';
import { durationFlag } from '../cli/duration-flag.js';
import { runAudit, type AuditReport } from '../audit/audit.js';
import { fetchLedger } from '../audit/ledger.js';
import { withStores } from '../stores.js';

export default class Audit extends FsaleCommand {
  static override summary = 'Check that nothing was oversold, lost or charged twice.';
  static override description = `Checks every invariant against PostgreSQL, Redis and the gateway's ledger, per product: no oversell; conservation (Redis stock + live reservations = stock); PG and Redis agree; every accepted order reached PostgreSQL; nothing dead-lettered; one order per idempotency key; at most one successful charge per order, and the ledger agrees with PG; no order stuck.

Exit codes: 0 all hold, 1 an invariant is violated, 2 a service cannot be reached.`;
  static override examples = [
    '<%= config.bin %> audit',
    '<%= config.bin %> audit --product p1 --json',
    '<%= config.bin %> audit --no-gateway   # when the gateway is not running',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    ...gatewayUrlFlag,
    product: Flags.string({ description: 'audit only this product' }),
    gateway: Flags.boolean({
      description: "check the gateway's ledger (--no-gateway skips it)",
      default: true,
      allowNo: true,
    }),
    'persist-grace': durationFlag({
      description: 'an accepted order older than this must be in PostgreSQL',
      default: 10_000,
      min: 0,
    }),
    'stuck-after': durationFlag({
      description: 'an unsettled order untouched this long is stuck',
      default: 300_000,
      min: 0,
    }),
  };

  async run(): Promise<AuditReport> {
    const { flags } = await this.parse(Audit);
    const config = this.settings(flags);
    const ledger = flags.gateway ? await fetchLedger(config.gatewayUrl) : undefined;
    const connection = { ...config, name: 'fsale audit', poolMax: 2 };
    return withStores(connection, async (stores) => {
      const report = await runAudit(
        { ...stores, ledger },
        {
          productId: flags.product,
          persistGraceMs: flags['persist-grace'],
          stuckAfterMs: flags['stuck-after'],
        },
      );
      if (!this.jsonEnabled()) {
        this.log(
          renderTable(
            outputStyle(),
            report.checks.map((c) => [c.name, c.expected, c.actual, c.ok ? 'OK' : 'FAIL']),
            ['invariant', 'expected', 'actual', 'result'],
          ),
        );
        this.log(
          report.ok
            ? `all ${report.checks.length} checks hold`
            : `${report.checks.filter((c) => !c.ok).length} of ${report.checks.length} checks FAIL`,
        );
      }
      if (!report.ok) process.exitCode = 1;
      return report;
    });
  }
}
