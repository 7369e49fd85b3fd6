import { FsaleCommand, serviceFlags } from '../cli/base.js';
import { migrate, type MigrationResult } from '../db/migrate.js';

export default class Migrate extends FsaleCommand {
  static override summary = 'Create the database if missing and apply pending SQL migrations.';
  static override description = `Applies sql/NNNNNN_name.sql files in order, each in its own transaction, and records them in the fsale_migrations table. An advisory lock makes it safe to run from many processes at once: each file is applied exactly once.`;
  static override examples = [
    '<%= config.bin %> migrate',
    '<%= config.bin %> migrate --database-url postgres://postgres@127.0.0.1:5432/sale2 --json',
  ];
  static override enableJsonFlag = true;
  static override flags = { 'database-url': serviceFlags['database-url'] };

  async run(): Promise<MigrationResult> {
    const { flags } = await this.parse(Migrate);
    const config = this.settings(flags);
    const result = await migrate(config.databaseUrl);
    if (result.created) this.log(`created database ${result.database}`);
    this.log(
      result.applied.length === 0
        ? `database ${result.database} is up to date (${result.alreadyApplied.length} migrations)`
        : `applied ${result.applied.join(', ')} to ${result.database}`,
    );
    return result;
  }
}
