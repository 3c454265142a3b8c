/**
 * `onboarding.ca_pins`: the agent trusts a server whose TLS chain contains a CA with a pinned
 * SubjectPublicKeyInfo, against a real node:https server, and sends nothing to one that does not.
 */
import { X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { Server } from "node:https";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import type { AgentError } from "../src/agent/agent-error.ts";
import { caPin, untrustedChainReason } from "../src/agent/ca-pins.ts";
import { postJoin } from "../src/agent/client.ts";
import type { JoinRequestWire } from "../src/lib/join-wire.ts";
import { createTestCa, issueServerCertificate } from "./support/https-issuer.ts";
import type { TestCa } from "./support/https-issuer.ts";
import { systemTool } from "./support/system-tools.ts";

const OPENSSL = systemTool("openssl", "openssl");

const REQUEST: JoinRequestWire = {
  token: "example-bot",
  role: "Bot",
  id_token: "a-service-account-jwt",
  public_tls_key: "unused",
  public_ssh_key: "unused",
  expires: "2030-01-01T00:00:00Z",
};

/** An HTTPS server answering every request with a kube-join error body, counting requests. */
async function serve(
  cert: string,
  key: string,
): Promise<{ url: URL; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer({ cert, key }, (_req, res) => {
    requests++;
    res.writeHead(403, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "no_matching_allow_rule", message: "reached" } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: new URL(`https://127.0.0.1:${port}`),
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("ca_pins", () => {
  let ca: TestCa;
  let other: TestCa;
  let leafPem: string;
  let chained: Awaited<ReturnType<typeof serve>>;
  let leafOnly: Awaited<ReturnType<typeof serve>>;

  before(async () => {
    ca = await createTestCa("kube-join pinned CA");
    other = await createTestCa("someone else's CA");
    const { certPem, keyPem } = await issueServerCertificate(ca);
    leafPem = certPem;
    // The server's certificate file holds the chain: leaf, then its CA.
    chained = await serve(`${certPem.trim()}\n${ca.certPem.trim()}\n`, keyPem);
    leafOnly = await serve(certPem, keyPem);
  });
  after(async () => {
    await chained.close();
    await leafOnly.close();
  });

  const tryJoin = (url: URL, options: { ca?: string; pins: string[] }) =>
    postJoin({ server: url, ca: options.ca, caPins: options.pins, timeoutMs: 5000 }, REQUEST);

  test(
    "caPin is sha256 of the SubjectPublicKeyInfo, as openssl computes it",
    { skip: OPENSSL.skip },
    () => {
      const dir = mkdtempSync(join(tmpdir(), "kube-join-pin-"));
      writeFileSync(join(dir, "ca.pem"), ca.certPem);
      const spki = execFileSync(OPENSSL.path, [
        "x509",
        "-in",
        join(dir, "ca.pem"),
        "-noout",
        "-pubkey",
      ]);
      const der = execFileSync(OPENSSL.path, ["pkey", "-pubin", "-outform", "DER"], {
        input: spki,
      });
      const digest = execFileSync(OPENSSL.path, ["dgst", "-sha256", "-hex", "-r"], { input: der })
        .toString()
        .split(" ")[0];
      assert.equal(caPin(new X509Certificate(ca.certPem)), `sha256:${digest}`);
    },
  );

  test("a chain containing the pinned CA is trusted: the request reaches the server", async () => {
    const before = chained.requests();
    await assert.rejects(
      tryJoin(chained.url, { pins: [caPin(new X509Certificate(ca.certPem))] }),
      (err: AgentError) => err.code === "no_matching_allow_rule" && err.message === "reached",
    );
    assert.equal(chained.requests(), before + 1);
  });

  test("one matching pin among others is enough", async () => {
    const pins = [
      caPin(new X509Certificate(other.certPem)),
      caPin(new X509Certificate(ca.certPem)),
    ];
    await assert.rejects(
      tryJoin(chained.url, { pins }),
      (err: AgentError) => err.code === "no_matching_allow_rule",
    );
  });

  const refused: Array<[string, () => { url: URL; pins: string[]; ca?: string }, RegExp]> = [
    [
      "a pin of another CA",
      () => ({ url: chained.url, pins: [caPin(new X509Certificate(other.certPem))] }),
      /TLS: the server's TLS certificate chain matches neither ca_pins$/,
    ],
    [
      "a pin of the leaf, which is no CA",
      () => ({ url: chained.url, pins: [caPin(new X509Certificate(leafPem))] }),
      /matches neither ca_pins$/,
    ],
    [
      "a server that does not send its CA: the pin cannot be checked",
      () => ({ url: leafOnly.url, pins: [caPin(new X509Certificate(ca.certPem))] }),
      /matches neither ca_pins$/,
    ],
    [
      "neither the CA file nor the pins",
      () => ({
        url: chained.url,
        ca: other.certPem,
        pins: [caPin(new X509Certificate(other.certPem))],
      }),
      /matches neither ca_path nor ca_pins \(.+\)$/,
    ],
  ];
  for (const [name, arrange, message] of refused) {
    test(`refused, nothing sent: ${name}`, async () => {
      const { url, pins, ca: caPem } = arrange();
      const before = chained.requests() + leafOnly.requests();
      await assert.rejects(
        tryJoin(url, { pins, ...(caPem === undefined ? {} : { ca: caPem }) }),
        (err: AgentError) => err.code === "server_unreachable" && message.test(err.message),
      );
      assert.equal(chained.requests() + leafOnly.requests(), before, "the token never left");
    });
  }

  test("the right chain for another name is refused: the leaf must name the host", async () => {
    const socket = connect({
      host: "127.0.0.1",
      port: Number(chained.url.port),
      rejectUnauthorized: false,
    });
    await once(socket, "secureConnect");
    try {
      const pins = [caPin(new X509Certificate(ca.certPem))];
      assert.equal(untrustedChainReason(socket, "127.0.0.1", pins, false, new Date()), undefined);
      assert.match(
        untrustedChainReason(socket, "kube-join.example", pins, false, new Date()) ?? "",
        /Hostname\/IP does not match certificate's altnames: Host: kube-join\.example/,
      );
      const later = new Date(Date.now() + 3 * 24 * 3_600_000);
      assert.match(
        untrustedChainReason(socket, "127.0.0.1", pins, false, later) ?? "",
        /matches neither ca_pins/,
      );
    } finally {
      socket.destroy();
    }
  });

  test("the CA file alone still trusts the chain when pins do not match", async () => {
    await assert.rejects(
      tryJoin(chained.url, { ca: ca.certPem, pins: [caPin(new X509Certificate(other.certPem))] }),
      (err: AgentError) => err.code === "no_matching_allow_rule",
    );
  });
});
