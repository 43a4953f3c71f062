// Operator flags and environment: the resync period that drives data-plane polling.
import { parseConfig, parseDuration } from '../src/config.js';

describe('operator configuration', () => {
  test('the resync period defaults to 30s and reads --resync-period or RESYNC_PERIOD', () => {
    expect(parseConfig([], {}).resyncPeriodMs).toBe(30_000);
    expect(parseConfig(['--resync-period', '5s'], {}).resyncPeriodMs).toBe(5000);
    expect(parseConfig([], { RESYNC_PERIOD: '2m' }).resyncPeriodMs).toBe(120_000);
    expect(parseConfig(['--resync-period', '750ms'], { RESYNC_PERIOD: '2m' }).resyncPeriodMs).toBe(750);
  });

  test('durations: units ms, s, m, h; a bare number is seconds; nonsense is refused with the value', () => {
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('10')).toBe(10_000);
    expect(() => parseDuration('soon')).toThrow('invalid duration "soon"');
    expect(() => parseDuration('0s')).toThrow('must be positive');
  });
});
