/**
 * Property-based fuzzing (fast-check, seeded: `FUZZ_SEED=N` reproduces a run, and a failure
 * prints its seed and path) of the two parsers untrusted bytes reach first:
 *
 * - the JWT verifier: thousands of mutations of valid tokens (bytes of each segment, JSON shapes,
 *   duplicate keys, base64 variants); none verifies unless its decoded bytes equal the original,
 *   and every rejection is a JoinError with a registered code;
 * - the join endpoint's body reader and shape check: random bodies and headers never get a 5xx
 *   and never crash the listener.
 */
import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { Agent, createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { loadOrCreateAuthority } from "../src/ca/authority.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";
import { JoinError, isErrorCode, statusOf } from "../src/errors.ts";
import { createJoinApp } from "../src/http/app.ts";
import { JoinService } from "../src/join/join.ts";
import { verifyServiceAccountToken } from "../src/methods/kubernetes/service-account.ts";
import { exampleResources } from "./support/example-resources.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  jwksOf,
  mintServiceAccountToken,
  parseJwksOrThrow,
  serviceAccountClaims,
} from "./support/jwt.ts";

const SEED = Number(process.env["FUZZ_SEED"] ?? 20261201);

const es = generateClusterKey("ES256");
const rsa = generateClusterKey("RS256");
const keySet = parseJwksOrThrow(jwksOf(es, rsa));
const originals = [mintServiceAccountToken(es), mintServiceAccountToken(rsa)];

function decodeSegments(jwt: string): Buffer[] {
  return jwt.split(".").map((s) => Buffer.from(s, "base64url"));
}

/** A small seeded generator (mulberry32): each case draws its mutation choices from its seed. */
interface Rng {
  nextInt(min: number, max: number): number;
}

function rngOf(seed: number): Rng {
  let state = seed >>> 0;
  return {
    nextInt(min, max) {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      return min + Math.floor(unit * (max - min + 1));
    },
  };
}

type Mutation = (segments: string[], rng: Rng) => string[];

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.nextInt(0, items.length - 1)] as T;

/** Mutations of one segment's decoded bytes, re-encoded. */
const byteMutations: Mutation[] = [
  (s, rng) => mapSegment(s, rng, (b) => flipBit(b, rng)),
  (s, rng) => mapSegment(s, rng, (b) => Buffer.concat([b, Buffer.from([rng.nextInt(0, 255)])])),
  (s, rng) => mapSegment(s, rng, (b) => b.subarray(0, rng.nextInt(0, Math.max(0, b.length - 1)))),
  (s, rng) => mapSegment(s, rng, (b) => Buffer.alloc(b.length)),
];

/** Mutations of the encoded text: stray characters, padding, the other base64 alphabet. */
const textMutations: Mutation[] = [
  (s, rng) => {
    const i = rng.nextInt(0, s.length - 1);
    const text = s[i] ?? "";
    const at = rng.nextInt(0, text.length);
    const ch = pick(rng, ["=", "+", "/", " ", ".", "\n", "%", "A", "_", "-", "\u00e9"]);
    return replace(s, i, text.slice(0, at) + ch + text.slice(at + 1));
  },
  (s, rng) => {
    const i = rng.nextInt(0, s.length - 1);
    return replace(s, i, `${s[i] ?? ""}${pick(rng, ["=", "==", "==="])}`);
  },
  (s, rng) => {
    const i = rng.nextInt(0, s.length - 1);
    return replace(
      s,
      i,
      Buffer.from(s[i] ?? "", "base64url").toString("base64"), // standard alphabet, padded
    );
  },
  (s) => [...s, ""],
  (s) => s.slice(0, 2),
  (s) => [s.join(".")],
];

/** Mutations of the header or claims as JSON. */
function jsonMutations(value: unknown): Mutation[] {
  const set =
    (field: string): Mutation =>
    (s, rng) =>
      mapJson(s, rng, (obj) => ({ ...obj, [field]: value }));
  return [
    set("alg"),
    set("kid"),
    set("typ"),
    set("crit"),
    set("aud"),
    set("exp"),
    set("sub"),
    set("kubernetes.io"),
    (s, rng) => mapJson(s, rng, () => value),
    (s, rng) => mapJsonText(s, rng, (text) => `{"alg":${JSON.stringify(value)},${text.slice(1)}`), // duplicate key first
    (s, rng) =>
      mapJsonText(s, rng, (text) => `${text.slice(0, -1)},"alg":${JSON.stringify(value)}}`), // duplicate key last
    (s, rng) =>
      mapJsonText(
        s,
        rng,
        (text) => `${text.slice(0, -1)},"sub":"system:serviceaccount:kube-system:admin"}`,
      ),
    (s, rng) => mapJsonText(s, rng, (text) => ` ${text}\n`),
    (s, rng) => mapJsonText(s, rng, (text) => `\ufeff${text}`),
  ];
}

function replace(s: string[], i: number, value: string): string[] {
  const copy = [...s];
  copy[i] = value;
  return copy;
}

function mapSegment(s: string[], rng: Rng, f: (b: Buffer) => Buffer): string[] {
  const i = rng.nextInt(0, 2);
  return replace(s, i, f(Buffer.from(s[i] ?? "", "base64url")).toString("base64url"));
}

function flipBit(b: Buffer, rng: Rng): Buffer {
  const copy = Buffer.from(b);
  if (copy.length === 0) return copy;
  const i = rng.nextInt(0, copy.length - 1);
  copy[i] = (copy[i] ?? 0) ^ (1 << rng.nextInt(0, 7));
  return copy;
}

function mapJsonText(s: string[], rng: Rng, f: (text: string) => string): string[] {
  const i = rng.nextInt(0, 1);
  const text = Buffer.from(s[i] ?? "", "base64url").toString("utf8");
  return replace(s, i, Buffer.from(f(text), "utf8").toString("base64url"));
}

function mapJson(s: string[], rng: Rng, f: (obj: Record<string, unknown>) => unknown): string[] {
  return mapJsonText(s, rng, (text) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return text; // an earlier step left no JSON here: nothing to reshape
    }
    const obj =
      typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : {};
    return JSON.stringify(f(obj)) ?? "null";
  });
}

test("fuzz: no mutation of a valid token verifies unless its bytes are the original's; every refusal has a registered code", () => {
  const codes = new Map<string, number>();
  const arbitrary = fc.record({
    original: fc.constantFrom(...originals),
    value: fc.jsonValue({ maxDepth: 2 }),
    kind: fc.constantFrom("bytes", "text", "json"),
    steps: fc.integer({ min: 1, max: 3 }),
    seed: fc.integer(),
  });
  fc.assert(
    fc.property(arbitrary, ({ original, value, kind, steps, seed }) => {
      const rng = rngOf(seed);
      let segments = original.split(".");
      for (let i = 0; i < steps; i += 1) {
        const pool =
          kind === "bytes" ? byteMutations : kind === "text" ? textMutations : jsonMutations(value);
        segments = pick(rng, pool)(segments, rng);
      }
      const mutated = segments.join(".");
      try {
        verifyServiceAccountToken(mutated, keySet, { audience: TEST_AUDIENCE }, TEST_NOW_MS);
      } catch (err) {
        assert.ok(err instanceof JoinError, `not a JoinError: ${String(err)}`);
        assert.ok(isErrorCode(err.code));
        assert.ok(!err.message.includes(mutated), "the message echoes the token");
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
        return;
      }
      // Accepted: it must be the original token, byte for byte once decoded.
      const a = decodeSegments(mutated);
      const b = decodeSegments(original);
      assert.equal(a.length, 3);
      for (let i = 0; i < 3; i += 1) assert.ok(a[i]?.equals(b[i] ?? Buffer.alloc(0)));
      codes.set("accepted", (codes.get("accepted") ?? 0) + 1);
    }),
    { seed: SEED, numRuns: 4000 },
  );
  // The run reached deep: signatures, claims and shapes were all exercised.
  for (const code of ["jwt_malformed", "jwt_signature_invalid", "jwt_algorithm_not_allowed"]) {
    assert.ok((codes.get(code) ?? 0) > 0, `${code} never came up: ${JSON.stringify([...codes])}`);
  }
});

let server: Server;
let baseUrl: string;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const crashes: unknown[] = [];

before(async () => {
  const authority = await loadOrCreateAuthority(
    { clusterName: TEST_AUDIENCE, dataDir: mkdtempSync(join(tmpdir(), "kube-join-fuzz-")) },
    TEST_NOW_MS,
  );
  const resources = exampleResources(jwksOf(es, rsa), { file: "fuzz.yaml" });
  const joins = new JoinService({
    clusterName: TEST_AUDIENCE,
    certs: { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 },
    snapshot: () => ({ resources, authority }),
    now: () => TEST_NOW_MS,
    onInternalError: (err) => crashes.push(err),
  });
  const app = createJoinApp({
    joins,
    trusted: () => authority.trusted(),
    onInternalError: (err) => crashes.push(err),
  });
  server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  agent.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function post(
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path, method: "POST", agent, headers },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

test("fuzz: random join bodies and headers never get a 5xx or crash the listener", async () => {
  const tlsKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;
  const sshKey = ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey, "fuzz");
  const valid = {
    token: "example-bot",
    id_token: mintServiceAccountToken(es, serviceAccountClaims()),
    public_tls_key: tlsKey,
    public_ssh_key: sshKey,
  };
  const headerValue = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,40}$/);
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
    fc
      .record({
        field: fc.constantFrom(...Object.keys(valid), "expires", "role"),
        value: fc.jsonValue(),
      })
      .map(({ field, value }) => Buffer.from(JSON.stringify({ ...valid, [field]: value }))),
    fc
      .record({
        field: fc.constantFrom(...Object.keys(valid)),
        value: fc.string({ maxLength: 80 }),
      })
      .map(({ field, value }) => Buffer.from(JSON.stringify({ ...valid, [field]: value }))),
    fc.constant(Buffer.from(JSON.stringify(valid))),
  );
  const headers = fc.record(
    {
      "content-type": fc.oneof(
        fc.constantFrom(
          "application/json",
          "application/json; charset=utf-8",
          "application/json; charset=latin1",
          "APPLICATION/JSON",
          "text/plain",
          'application/json;charset="UTF-8"',
        ),
        headerValue,
      ),
      "content-encoding": fc.constantFrom("gzip", "identity", "br", "x"),
      "x-forwarded-for": headerValue,
      expect: fc.constantFrom("100-continue", "nothing"),
    },
    { requiredKeys: [] },
  );
  await fc.assert(
    fc.asyncProperty(
      body,
      headers,
      fc.constantFrom("/v1/join", "/v1/join?x=1", "/v1/ca"),
      async (b, h, path) => {
        const { status, text } = await post(path, h, b);
        assert.ok(status < 500 && status >= 200, `status ${status}: ${text}`);
        if (status >= 400 && status !== 417) {
          const code = (JSON.parse(text) as { error: { code: string } }).error.code;
          assert.ok(isErrorCode(code), code);
          assert.equal(statusOf(code), status);
        }
      },
    ),
    { seed: SEED, numRuns: 600 },
  );
  assert.deepEqual(crashes, [], "an unexpected error reached the internal-error hook");
});
