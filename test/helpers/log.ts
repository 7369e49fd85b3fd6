// A real logger (src/cli/log.ts) whose JSON lines are kept in memory, for components run in
// the test's own process (workers, the API): a test reads what they logged.
import { createLogger, parseRecord, type LogRecord, type Logger } from '../../src/cli/log.js';
import type { LogLevel } from '../../src/config.js';

export interface MemoryLog {
  logger: Logger;
  records: LogRecord[];
  /** Every record's message, oldest first. */
  messages: () => string[];
}

export function memoryLogger(level: LogLevel = 'debug', name = 'test'): MemoryLog {
  const records: LogRecord[] = [];
  const logger = createLogger({
    name,
    level,
    json: true,
    destination: {
      write(line: string) {
        const record = parseRecord(line.trimEnd());
        if (record === undefined) throw new Error(`not a log record: ${line}`);
        records.push(record);
      },
    },
  });
  return { logger, records, messages: () => records.map((r) => r.msg) };
}
