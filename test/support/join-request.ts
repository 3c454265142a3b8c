import { generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import { ed25519AuthorizedKey } from "../../src/ca/ssh.ts";

const generate = promisify(generateKeyPair);

/** A bot's public keys as a join request carries them. */
export interface BotPublicKeys {
  /** PEM SubjectPublicKeyInfo of a fresh P-256 key. */
  readonly tlsPublicPem: string;
  /** authorized_keys line of a fresh Ed25519 key. */
  readonly sshPublicLine: string;
}

/**
 * Fresh bot keys. Generated asynchronously on purpose: under Node 20 the bench, minting its 54k
 * bodies with generateKeyPairSync, hung for good in the middle. A garbage collection inside the JWK
 * export of a new Ed25519 key ran the weak destructor of the synchronous key-generation job,
 * which waited for the mutex the export held (gdb: ExportJWKEdKey -> GC -> ~KeyGenJob ->
 * uv_mutex_lock). An asynchronous job is freed when it completes, never by the collector.
 */
export async function newBotPublicKeys(comment?: string): Promise<BotPublicKeys> {
  const [tls, ssh] = await Promise.all([
    generate("ec", { namedCurve: "P-256" }),
    generate("ed25519"),
  ]);
  return {
    tlsPublicPem: tls.publicKey.export({ type: "spki", format: "pem" }) as string,
    sshPublicLine: ed25519AuthorizedKey(ssh.publicKey, comment),
  };
}

/** The JSON body of `POST /v1/join`; `role` is left out (the service's default) unless given. */
export function joinRequestBody(request: {
  readonly token: string;
  readonly idToken: string;
  readonly keys: BotPublicKeys;
  readonly role?: string;
}): string {
  return JSON.stringify({
    token: request.token,
    ...(request.role === undefined ? {} : { role: request.role }),
    id_token: request.idToken,
    public_tls_key: request.keys.tlsPublicPem,
    public_ssh_key: request.keys.sshPublicLine,
  });
}

export interface JoinHttpResult {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** POSTs a join body to `<baseUrl>/v1/join`: the status and the JSON answer (10 s at most). */
export async function postJoin(baseUrl: string, body: string): Promise<JoinHttpResult> {
  const response = await fetch(`${baseUrl}/v1/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
