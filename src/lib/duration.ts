/**
 * Go-style durations, as Teleport writes them in resources (`max_session_ttl: 12h`). Leaf module:
 * imports nothing of ours.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 MICRO SIGN, as Go accepts it
  μs: 1e-3, // U+03BC GREEK SMALL LETTER MU, as Go accepts it
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

// One `<number><unit>` component; the whole text must be a sequence of these.
const COMPONENT = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a Go duration (`time.ParseDuration` syntax) into milliseconds: a sequence of decimal
 * numbers, each with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`), e.g. `12h`, `1h30m`, `1.5h`,
 * `90s`, `500ms`. `0` alone is zero. Sub-millisecond parts are kept as fractions of a
 * millisecond.
 *
 * Stricter than Go on purpose: negative durations are refused (no setting of ours means
 * anything by them), and so are days (`1d`), which Go does not know either.
 *
 * @throws TypeError naming the bad input when the text is not a duration.
 * @example parseDuration("1h30m") === 5_400_000
 */
export function parseDuration(text: string): number {
  if (typeof text !== "string") {
    throw new TypeError(`duration must be a string such as "12h", got ${typeof text}`);
  }
  if (text === "0" || text === "+0") return 0;
  if (text.startsWith("-")) {
    throw new TypeError(`duration ${JSON.stringify(text)} must not be negative`);
  }
  const body = text.startsWith("+") ? text.slice(1) : text;
  if (body === "") throw new TypeError(invalid(text));
  let total = 0;
  let at = 0;
  while (at < body.length) {
    COMPONENT.lastIndex = at;
    const match = COMPONENT.exec(body);
    if (match === null) throw new TypeError(invalid(text));
    const [whole, number, unit] = match as unknown as [string, string, string];
    total += Number(number) * (UNIT_MS[unit] ?? Number.NaN);
    at += whole.length;
  }
  if (!Number.isFinite(total)) throw new TypeError(invalid(text));
  return total;
}

/**
 * Formats milliseconds as the shortest Go duration that parses back to the same whole number of
 * milliseconds: `43_200_000` -> `12h`, `5_400_000` -> `1h30m`, `90_000` -> `1m30s`, `500` ->
 * `500ms`, `0` -> `0s`. Fractions of a millisecond are rounded.
 *
 * @throws TypeError for negative or non-finite input.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new TypeError(`cannot format ${String(ms)} as a duration`);
  }
  let rest = Math.round(ms);
  if (rest === 0) return "0s";
  const parts: string[] = [];
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
    ["ms", 1],
  ] as const) {
    const count = Math.floor(rest / size);
    if (count > 0) parts.push(`${count}${unit}`);
    rest -= count * size;
  }
  return parts.join("");
}

function invalid(text: string): string {
  return `invalid duration ${JSON.stringify(text)}: use a number with a unit, e.g. "12h", "30m", "1h30m", "90s" or "500ms"`;
}
