import { X509Certificate, createHash } from "node:crypto";
import type { DetailedPeerCertificate } from "node:tls";
import { checkServerIdentity, connect } from "node:tls";
import type { TLSSocket } from "node:tls";

/**
 * `sha256:<hex>` of a certificate's SubjectPublicKeyInfo (DER), as `tctl status` prints a
 * Teleport CA pin and tbot's `ca_pins` takes it.
 *
 * @example caPin(new X509Certificate(readFileSync("ca.pem"))) // "sha256:9f86d0..."
 */
export function caPin(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/**
 * Why the chain a server presented is not trusted, or `undefined` when it is: the leaf names
 * `host`, and either Node verified it against the `ca_path` anchors (`authorized`), or the chain
 * the server sent links, signature by signature and within validity, from the leaf up to a CA
 * certificate whose pin is in `pins`. A pin of a CA the server did not send cannot be checked,
 * so the server's certificate file must hold the chain (leaf, then its CA).
 */
export function untrustedChainReason(
  socket: TLSSocket,
  host: string,
  pins: readonly string[],
  caPathGiven: boolean,
  now: Date,
): string | undefined {
  if (caPathGiven && socket.authorized) return undefined;
  const peer = socket.getPeerCertificate(true);
  if (peer === null || Object.keys(peer).length === 0) return "the server sent no certificate";
  const identityError = checkServerIdentity(host, peer);
  if (identityError !== undefined) return identityError.message;
  const chain = chainOf(peer);
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (Date.parse(cert.validFrom) > now.getTime() || Date.parse(cert.validTo) < now.getTime()) {
      break;
    }
    if (cert.ca && pins.includes(caPin(cert))) return undefined;
    const issuer = chain[i + 1];
    if (issuer === undefined || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      break;
    }
  }
  const tried = [caPathGiven ? "ca_path" : undefined, pins.length > 0 ? "ca_pins" : undefined];
  return `the server's TLS certificate chain matches neither ${tried.filter(Boolean).join(" nor ")}${
    caPathGiven && socket.authorizationError !== undefined
      ? ` (${String(socket.authorizationError)})`
      : ""
  }`;
}

/** The certificates the server sent, leaf first, as Node links them (`issuerCertificate`). */
function chainOf(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let c: DetailedPeerCertificate | undefined = peer; c !== undefined && !seen.has(c);) {
    seen.add(c);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate === c ? undefined : c.issuerCertificate;
  }
  return out;
}

/**
 * Opens a TLS connection and hands it over only once its chain is trusted
 * (`untrustedChainReason`): nothing, the service-account token least of all, is written to a
 * server before that.
 */
export function connectTrusted(
  options: {
    readonly host: string;
    readonly port: number;
    readonly ca: string | undefined;
    readonly pins: readonly string[];
    readonly signal: AbortSignal;
  },
  done: (err: Error | null, socket?: TLSSocket) => void,
): void {
  const bare = options.host.replace(/^\[|\]$/g, "");
  const isIp = /^[\d.]+$/.test(bare) || bare.includes(":");
  const socket = connect({
    host: bare,
    port: options.port,
    ...(isIp ? {} : { servername: bare }),
    ...(options.ca === undefined ? { ca: [] } : { ca: options.ca }),
    // Checked below, with the pins, before the socket is handed to the HTTP client.
    rejectUnauthorized: false,
  });
  const abort = (): void => {
    socket.destroy();
    finish(new Error("aborted"));
  };
  let finished = false;
  function finish(err: Error | null, ok?: TLSSocket): void {
    if (finished) return;
    finished = true;
    options.signal.removeEventListener("abort", abort);
    done(err, ok);
  }
  options.signal.addEventListener("abort", abort, { once: true });
  socket.once("error", (err) => finish(err));
  socket.once("secureConnect", () => {
    const reason = untrustedChainReason(
      socket,
      bare,
      options.pins,
      options.ca !== undefined,
      new Date(),
    );
    if (reason === undefined) {
      finish(null, socket);
    } else {
      socket.destroy();
      finish(new Error(`TLS: ${reason}`));
    }
  });
}
