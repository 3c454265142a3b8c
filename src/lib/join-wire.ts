/**
 * The wire contract of `POST /v1/join`: the JSON bodies the agent sends and the server answers,
 * as types only. The server (`src/http/app.ts`) types what it parses and sends with these, and the
 * agent (`src/agent/client.ts`) what it sends and accepts, so a renamed or retyped field fails to
 * compile on both sides instead of drifting apart. Imports nothing and holds no code: the checks
 * of untrusted bodies stay with each side (the server refuses a bad request, the agent a bad
 * answer).
 */

/** The request body (docs/agent.md, "What one join does"). */
export interface JoinRequestWire {
  /** The join token resource's name, e.g. `example-bot`. */
  readonly token: string;
  /** Only `Bot` is served; absent means `Bot`. */
  readonly role?: "Bot";
  /** The pod's projected service-account JWT. */
  readonly id_token: string;
  /** SubjectPublicKeyInfo PEM of the key to certify for TLS. */
  readonly public_tls_key: string;
  /** `ecdsa-sha2-nistp256 <base64>` (authorized_keys form) of the key to certify for SSH. */
  readonly public_ssh_key: string;
  /** Requested expiry, RFC 3339; the server may grant less. */
  readonly expires?: string;
}

/** `join_attrs.kubernetes` of a 200 answer: what the server verified about the pod. */
export interface KubernetesJoinAttrsWire {
  readonly subject: string;
  readonly namespace: string;
  readonly service_account: string;
  readonly pod: string;
}

/**
 * `join_attrs`: per join method, the attributes it verified, e.g. `{ kubernetes: ... }`
 * (`KubernetesJoinAttrsWire`). Open, because each join method renders its own block and an agent
 * must accept methods it does not know (a newer server).
 */
export type JoinAttrsWire = Readonly<Record<string, unknown>>;

/** The 200 body: the issued identity, shaped like Teleport's certificates response. */
export interface JoinResponseWire {
  readonly bot_name: string;
  /** The Teleport user the certificates name, `bot-<bot_name>`. */
  readonly user: string;
  /** RFC 3339: when both certificates expire. */
  readonly expires: string;
  /** PEM X.509 client certificate. */
  readonly tls_cert: string;
  /** `ecdsa-sha2-nistp256-cert-v01@openssh.com <base64>` user certificate line. */
  readonly ssh_cert: string;
  /** PEM certificates of the CA(s) that sign `tls_cert`; never empty. */
  readonly tls_ca_certs: readonly string[];
  /** authorized_keys lines of the SSH CA(s) that sign `ssh_cert`; never empty. */
  readonly ssh_ca_keys: readonly string[];
  readonly join_attrs: JoinAttrsWire;
}

/** Every non-200 body (`src/http/error-response.ts`); `code` is in docs/errors.md. */
export interface JoinErrorWire {
  readonly error: { readonly code: string; readonly message: string };
}
