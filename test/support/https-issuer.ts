import { webcrypto } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
// @peculiar/x509 through the tests' loader, which installs the Reflect metadata polyfill its
// dependency tsyringe insists on.
import { x509 } from "./peculiar-x509.ts";

x509.cryptoProvider.set(webcrypto);

const SIGNING = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A throwaway certificate authority for one test run. */
export interface TestCa {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

export async function createTestCa(commonName = "kube-join test issuer CA"): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(SIGNING, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return { certPem: cert.toString("pem"), cert, keys };
}

/** A server certificate for 127.0.0.1 and localhost, signed by `ca`. */
export async function issueServerCertificate(
  ca: TestCa,
): Promise<{ readonly certPem: string; readonly keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(SIGNING, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: "CN=127.0.0.1",
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "dns", value: "localhost" },
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  const keyPem = x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
  return { certPem: cert.toString("pem"), keyPem };
}

/**
 * How an endpoint answers. `ok` serves the real document; the others are the failures an issuer
 * can show: a discovery document naming another issuer, broken JSON, bodies over 1 MiB (with or
 * without Content-Length), a response that never starts or stops half way, a server error, and
 * redirects (good, looping, to plain http, or one whose body streams up to `REDIRECT_BODY_CAP`).
 */
export type EndpointBehaviour =
  | "ok"
  | "wrong_issuer"
  | "malformed_json"
  | "oversized_chunked"
  | "oversized_declared"
  | "stall_headers"
  | "stall_body"
  | "http_500"
  | "redirect"
  | "redirect_loop"
  | "redirect_http"
  | "redirect_streaming";

export const OVERSIZED_BYTES = 1024 * 1024 + 1024;

/** What `redirect_streaming` sends at most after its 302 headers, unless the client hangs up. */
export const REDIRECT_BODY_CAP = 8 * 1024 * 1024;

/**
 * A real HTTPS OIDC issuer on 127.0.0.1 (ephemeral port): serves
 * `<issuer>/.well-known/openid-configuration` and `<issuer>/keys`, counts requests per path, and
 * lets a test rotate keys or make either endpoint misbehave.
 */
export class HttpsIssuer {
  /** The issuer URL, e.g. `https://127.0.0.1:41234/id/TEST`. */
  readonly issuer: string;
  /** PEM of the CA that signed the server certificate. */
  readonly caPem: string;
  /** The JWKs served at `<issuer>/keys` (e.g. `ClusterKey.jwk` from ./jwt.ts); replace to rotate. */
  jwks: ReadonlyArray<Readonly<Record<string, unknown>>> = [];
  discovery: EndpointBehaviour = "ok";
  keys: EndpointBehaviour = "ok";
  /** Overrides the `jwks_uri` the discovery document names (default `<issuer>/keys`). */
  jwksUri: string | undefined;
  /**
   * For each `redirect_streaming` response, in order: resolves once its connection closed, with
   * the body bytes the server managed to hand to the socket by then.
   */
  readonly redirectBodies: Array<Promise<number>> = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #counts = new Map<string, number>();
  readonly #prefix: string;

  private constructor(server: Server, issuer: string, prefix: string, caPem: string) {
    this.#server = server;
    this.issuer = issuer;
    this.#prefix = prefix;
    this.caPem = caPem;
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res));
    // Clients that abort (timeouts, size limits) reset connections: that is expected here.
    server.on("tlsClientError", () => {});
  }

  /**
   * Starts an issuer. `path` is the issuer's path (EKS style `/id/...`), `ca` the CA signing the
   * server certificate (a fresh one by default: give a second CA to present an untrusted cert).
   */
  static async start(
    options: { path?: string; ca?: TestCa; plainHttp?: boolean } = {},
  ): Promise<HttpsIssuer> {
    const ca = options.ca ?? (await createTestCa());
    const { certPem, keyPem } = await issueServerCertificate(ca);
    // plainHttp: an `insecure_allow_http_issuer` issuer (the CA is then unused).
    const server: Server = options.plainHttp
      ? (createHttpServer() as unknown as Server)
      : createServer({ cert: certPem, key: keyPem });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const prefix = options.path ?? "";
    const scheme = options.plainHttp ? "http" : "https";
    return new HttpsIssuer(server, `${scheme}://127.0.0.1:${port}${prefix}`, prefix, ca.certPem);
  }

  get discoveryPath(): string {
    return `${this.#prefix}/.well-known/openid-configuration`;
  }

  get keysPath(): string {
    return `${this.#prefix}/keys`;
  }

  /** Requests received for `path` so far. */
  requests(path: string): number {
    return this.#counts.get(path) ?? 0;
  }

  /** Stops listening and cuts every open connection (stalled ones included). */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "https://127.0.0.1").pathname;
    this.#counts.set(path, (this.#counts.get(path) ?? 0) + 1);
    res.on("error", () => {});
    if (path === this.discoveryPath) {
      const doc = { issuer: this.issuer, jwks_uri: this.jwksUri ?? `${this.issuer}/keys` };
      this.#answer(res, this.discovery, doc, path, {
        ...doc,
        issuer: `${this.issuer}/other`,
      });
    } else if (path === this.keysPath || path === `${this.#prefix}/keys-moved`) {
      const behaviour = path === this.keysPath ? this.keys : "ok";
      this.#answer(res, behaviour, { keys: this.jwks }, path, { keys: this.jwks });
    } else {
      res.writeHead(404).end();
    }
  }

  #answer(
    res: ServerResponse,
    behaviour: EndpointBehaviour,
    doc: object,
    path: string,
    wrongIssuerDoc: object,
  ): void {
    const json = { "content-type": "application/json" };
    switch (behaviour) {
      case "ok":
        res.writeHead(200, json).end(JSON.stringify(doc));
        return;
      case "wrong_issuer":
        res.writeHead(200, json).end(JSON.stringify(wrongIssuerDoc));
        return;
      case "malformed_json":
        res.writeHead(200, json).end(JSON.stringify(doc).slice(0, -3) + ",,}");
        return;
      case "oversized_chunked":
        res.writeHead(200, json);
        res.end(`{"pad":"${"x".repeat(OVERSIZED_BYTES)}"}`);
        return;
      case "oversized_declared": {
        const body = `{"pad":"${"x".repeat(OVERSIZED_BYTES)}"}`;
        res.writeHead(200, { ...json, "content-length": Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      case "stall_headers":
        return; // never answers; stop() cuts the connection
      case "stall_body":
        res.writeHead(200, { ...json, "content-length": 1000 });
        res.write('{"keys": [');
        return;
      case "http_500":
        res.writeHead(500, json).end('{"error":"internal detail that must not reach callers"}');
        return;
      case "redirect":
        res.writeHead(302, { location: `${this.#prefix}/keys-moved` }).end();
        return;
      case "redirect_loop":
        res.writeHead(302, { location: path }).end();
        return;
      case "redirect_http":
        res.writeHead(302, { location: `http://127.0.0.1:1${path}` }).end();
        return;
      case "redirect_streaming":
        this.redirectBodies.push(streamUntilClosed(res, `${this.#prefix}/keys-moved`));
        return;
    }
  }
}

/**
 * A 302 whose body keeps coming (honouring backpressure) until the client closes the connection
 * or `REDIRECT_BODY_CAP` bytes went out. Resolves with the bytes written when the response closes.
 */
function streamUntilClosed(res: ServerResponse, location: string): Promise<number> {
  return new Promise<number>((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, "x");
    let written = 0;
    let closed = false;
    res.on("close", () => {
      closed = true;
      resolve(written);
    });
    res.writeHead(302, { location, "content-type": "text/plain" });
    const pump = (): void => {
      while (!closed && written < REDIRECT_BODY_CAP) {
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      if (!closed) res.end();
    };
    pump();
  });
}
