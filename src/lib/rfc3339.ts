/**
 * Strict RFC 3339 date-times (section 5.6), as resources (`metadata.expires`) and join requests
 * (`expires`) carry them. Leaf module: imports nothing of ours.
 */

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * Milliseconds since the epoch for a strict RFC 3339 date-time, or undefined: a full date, `T`,
 * a full time, and `Z` or an offset, with the calendar checked (`2026-02-30` and hour 24 are not
 * dates, though `Date.parse` rolls them over).
 *
 * @example parseRfc3339("2026-11-28T18:00:00Z") === 1795888800000
 */
export function parseRfc3339(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const offsetHours = m[9] === undefined ? 0 : Number(m[9]);
  const offsetMinutes = m[10] === undefined ? 0 : Number(m[10]);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) {
    return undefined;
  }
  const ms = Date.parse(text.toUpperCase());
  return Number.isNaN(ms) ? undefined : ms;
}
