import { execFileSync } from "node:child_process";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { connect, createServer, type PeerCertificate } from "node:tls";
import { x509 } from "./peculiar-x509.ts";

/**
 * A real mutual-TLS handshake: a node `tls` server that requires a client certificate issued
 * by one of `trustedCaCerts` (and nothing else) on 127.0.0.1, and a client presenting
 * `clientKey` + `clientCert`. The outcome is the server's view, which is what matters for
 * client authentication (under TLS 1.3 the client finishes before the server has checked it).
 */
export interface MutualTlsResult {
  readonly authorized: boolean;
  /** Why the server refused the client (an OpenSSL verify code, e.g. `DEPTH_ZERO_SELF_SIGNED_CERT`). */
  readonly error?: string;
  readonly peerCertificate?: PeerCertificate;
}

export async function mutualTlsHandshake(options: {
  readonly trustedCaCerts: readonly string[];
  readonly clientKey: string;
  readonly clientCert: string;
}): Promise<MutualTlsResult> {
  const server = await throwawayServerIdentity();
  const tlsServer = createServer({
    key: server.key,
    cert: server.cert,
    ca: [...options.trustedCaCerts],
    requestCert: true,
    rejectUnauthorized: true,
  });
  const outcome = new Promise<MutualTlsResult>((resolve) => {
    const timer = setTimeout(() => resolve({ authorized: false, error: "timeout" }), 10_000);
    tlsServer.on("secureConnection", (socket) => {
      clearTimeout(timer);
      resolve({ authorized: socket.authorized, peerCertificate: socket.getPeerCertificate() });
      socket.end("ok");
    });
    tlsServer.on("tlsClientError", (error, socket) => {
      // node destroys a refused client's socket itself, so `error` is only "socket hang up";
      // the verification result is on the socket.
      clearTimeout(timer);
      resolve({ authorized: false, error: String(socket.authorizationError ?? error.message) });
    });
  });
  await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
  const { port } = tlsServer.address() as AddressInfo;
  const client = connect({
    host: "127.0.0.1",
    port,
    key: options.clientKey,
    cert: options.clientCert,
    rejectUnauthorized: false, // the server's identity is not under test
  });
  client.on("error", () => {
    // The server's refusal surfaces here as an alert; the server side reports the outcome.
  });
  client.resume();
  try {
    return await outcome;
  } finally {
    client.destroy();
    await new Promise((resolve) => tlsServer.close(resolve));
  }
}

async function throwawayServerIdentity(): Promise<{ key: string; cert: string }> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const keys = {
    privateKey: await webcrypto.subtle.importKey(
      "pkcs8",
      privateKey.export({ type: "pkcs8", format: "der" }),
      algorithm,
      false,
      ["sign"],
    ),
    publicKey: await webcrypto.subtle.importKey(
      "spki",
      publicKey.export({ type: "spki", format: "der" }),
      algorithm,
      true,
      ["verify"],
    ),
  };
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: "CN=127.0.0.1",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      keys,
      signingAlgorithm: algorithm,
    },
    webcrypto,
  );
  return {
    key: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    cert: cert.toString("pem"),
  };
}

/**
 * Writes `server.key` and a self-signed P-256 `server.crt` for 127.0.0.1 (a day's validity) into
 * `dir` with the real `openssl`, for a kube-join `tls:` block; returns the certificate's PEM, which
 * a client trusts as its CA.
 */
export function writeLoopbackServerCertificate(opensslPath: string, dir: string): string {
  execFileSync(
    opensslPath,
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(dir, "server.key"),
      "-out",
      join(dir, "server.crt"),
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return readFileSync(join(dir, "server.crt"), "utf8");
}
