// Prefixed, coloured log lines for commands that run several processes (`up`, `demo`).
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];

export function linePrefixer(tty: boolean): (name: string, line: string) => string {
  const assigned = new Map<string, number>();
  return (name, line) => {
    const label = name.padEnd(10);
    if (!tty) return `${label} | ${line}`;
    let color = assigned.get(name.replace(/-\d+$/, ''));
    if (color === undefined) {
      color = COLORS[assigned.size % COLORS.length] ?? 36;
      assigned.set(name.replace(/-\d+$/, ''), color);
    }
    return `\x1b[${color}m${label}\x1b[0m | ${line}`;
  };
}
