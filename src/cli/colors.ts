// The one place that decides how rich a command's output may be. A terminal gets colours,
// box-drawn tables, in-place redraws and unicode; anything else (a pipe, a file, a log
// collector) or NO_COLOR (https://no-color.org) or TERM=dumb gets plain text: no escape
// byte, no box drawing or block characters (the words themselves stay UTF-8: `µs`, `—`), so
// `fsale audit | grep FAIL` reads clean and `cat -v` shows no control sequence.
import Table from 'cli-table3';

export interface OutputStyle {
  /** Colours, box-drawn tables, cursor movement and unicode blocks are allowed. */
  rich: boolean;
}

export function outputStyle(
  stream: { isTTY?: boolean } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): OutputStyle {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return { rich: stream.isTTY === true && !noColor && env.TERM !== 'dumb' };
}

/** A table: box-drawn (with a coloured head) when rich, else columns aligned with spaces. */
export function renderTable(
  style: OutputStyle,
  rows: readonly (readonly string[])[],
  head?: readonly string[],
): string {
  if (style.rich) {
    const table = new Table(head === undefined ? {} : { head: [...head] });
    for (const row of rows) table.push([...row]);
    return table.toString();
  }
  const all = head === undefined ? rows : [head, ...rows];
  const widths: number[] = [];
  for (const row of all)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

// Prefixed, coloured log lines for commands that run several processes (`up`, `demo`).
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];

export function linePrefixer(style: OutputStyle): (name: string, line: string) => string {
  const assigned = new Map<string, number>();
  return (name, line) => {
    const label = name.padEnd(10);
    if (!style.rich) return `${label} | ${line}`;
    let color = assigned.get(name.replace(/-\d+$/, ''));
    if (color === undefined) {
      color = COLORS[assigned.size % COLORS.length] ?? 36;
      assigned.set(name.replace(/-\d+$/, ''), color);
    }
    return `\x1b[${color}m${label}\x1b[0m | ${line}`;
  };
}
