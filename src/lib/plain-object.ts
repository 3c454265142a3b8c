/**
 * The one test for "a JSON/YAML mapping" (not null, not a list), shared by the JWKS parser and the
 * YAML field reader. Leaf module: imports nothing of ours.
 */

/** Whether `value` is an object that is neither null nor an array (what a mapping parses to). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
