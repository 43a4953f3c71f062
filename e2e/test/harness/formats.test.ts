// `format: date-time` on custom resources, as kube-apiserver checks it: a value that is not an
// RFC 3339 time is refused with the server's text; the harness is never laxer than the server.
import { validateValue } from '../../src/harness/schema.js';

const check = (v: string) => {
  const out: { message: string }[] = [];
  validateValue(v, { type: 'string', format: 'date-time' }, 'spec.targetTime', out as never);
  return out.map((c) => c.message);
};

test.each(['2026-12-04T03:00:00Z', '2026-12-04T03:00:00.123456Z', '2026-12-04t03:00:00+01:00', '2028-02-29T23:59:59-05:30'])('%s is a date-time', (v) => {
  expect(check(v)).toEqual([]);
});

test.each(['yesterday', '2026-12-04', '2026-12-04 03:00:00Z', '2026-02-30T00:00:00Z', '2026-12-04T25:00:00Z', '2026-12-04T03:00:00', '1733281200'])('%s is refused as the API server refuses it', (v) => {
  expect(check(v)).toEqual([`Invalid value: ${JSON.stringify(v)}: spec.targetTime in body must be of type date-time: ${JSON.stringify(v)}`]);
});
