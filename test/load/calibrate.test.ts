import { describe, expect, it } from 'vitest';
import { calibrate, CALIBRATION, sustainedRate } from '../../src/load/calibrate.js';
import { OUTCOME_CLASSES } from '../../src/load/outcomes.js';
import type { TimelineRow } from '../../src/load/recorder.js';

const row = (
  second: number,
  target: number,
  lag: number,
  p99: number,
  sent = target,
): TimelineRow => ({
  second,
  target,
  sent,
  answered: sent,
  outcomes: Object.fromEntries(OUTCOME_CLASSES.map((c) => [c, 0])) as TimelineRow['outcomes'],
  p50: p99 / 2,
  p99,
  max: p99,
  confirmed: 0,
  sendLagMax: lag,
  inFlightMax: 10,
});

describe('demo calibration', () => {
  it('the sustained rate is the last second kept before the first one that fell behind', () => {
    const rows = [row(0, 1000, 2, 3), row(1, 3000, 4, 5), row(2, 5000, 60, 8), row(3, 7000, 3, 4)];
    expect(sustainedRate(rows, 20)).toBe(3000);
  });

  it('a ramp kept to its end is sustained at its top, whatever comes in after it', () => {
    // The second after the ramp has target 0 and the last few sends: it once reset the
    // sustained rate to 0, and the demo then ran its sale at the minimum rate.
    const rows = [row(0, 500, 4, 6), row(1, 1500, 6, 9), row(2, 2500, 8, 10), row(3, 0, 2, 5, 4)];
    expect(sustainedRate(rows, 20)).toBe(2500);
  });

  it('a second whose answers were slow, or that sent short of its target, ends it too', () => {
    expect(sustainedRate([row(0, 1000, 1, 2), row(1, 2000, 1, 300)], 20)).toBe(1000);
    expect(sustainedRate([row(0, 1000, 1, 2), row(1, 2000, 1, 2, 1500)], 20)).toBe(1000);
  });

  it('the demo runs at a rounded share of it, within bounds', () => {
    expect(calibrate([row(0, 2321, 1, 1)]).rate).toBe(
      Math.floor((2321 * CALIBRATION.share) / 100) * 100,
    );
    expect(calibrate([row(0, 2321, 1, 1)]).rate).toBeLessThan(CALIBRATION.maxDemoRate);
    expect(calibrate([row(0, 100_000, 1, 1)]).rate).toBe(CALIBRATION.maxDemoRate);
    expect(calibrate([row(0, 500, 90, 1)])).toEqual({
      sustainedRate: 0,
      rate: CALIBRATION.minRate,
    });
  });
});
