import { describe, expect, it } from 'vitest';
import { formatCount, timeTicks } from '../../src/load/svg-chart.js';

// The report's chart drawing (src/load/svg-chart.ts); the charts as a browser lays them out are
// test/load/report-html.test.ts.

describe('SVG charts', () => {
  it('axis helpers: compact counts, and time ticks that leave each label room', () => {
    expect([0, 950, 12_500, 250_000, 3_200_000].map(formatCount)).toEqual([
      '0',
      '950',
      '12.5k',
      '250k',
      '3.2M',
    ]);
    // 100 ms apart would be 32 px for 3-character labels: 200 ms is the smallest step that fits.
    expect(timeTicks(2.5, 800, 0.1)).toEqual([
      0, 0.2, 0.4, 0.6, 0.8, 1, 1.2, 1.4, 1.6, 1.8, 2, 2.2, 2.4,
    ]);
    expect(timeTicks(600, 800)).toEqual([0, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600]);
  });
});
