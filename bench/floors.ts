import { generateKeyPairSync, hash, sign, verify } from "node:crypto";
import { measureInterleaved, round, type BenchRow } from "./measure.ts";

/**
 * The floors of this machine: what node:crypto itself costs for the primitives kube-join is built
 * on, measured interleaved. Every other figure is read as a ratio to one of these, measured in
 * the same run.
 */
export interface Floors {
  readonly rs256VerifyUs: number;
  readonly p256SignUs: number;
  readonly ed25519SignUs: number;
  readonly sha256JwtUs: number;
}

export function measureFloors(sampleJwt: string): Floors {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const data = Buffer.from(sampleJwt.split(".").slice(0, 2).join("."));
  const rsaSig = sign("sha256", data, rsa.privateKey);
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ed = generateKeyPairSync("ed25519");
  const tbs = Buffer.alloc(600, 7); // about the size of a bot TBSCertificate
  const us = measureInterleaved({
    rs256: () => verify("sha256", data, rsa.publicKey, rsaSig),
    p256: () => sign("sha256", tbs, ec.privateKey),
    ed25519: () => sign(null, tbs, ed.privateKey),
    sha256: () => hash("sha256", sampleJwt, "base64url"),
  });
  return {
    rs256VerifyUs: us["rs256"]!,
    p256SignUs: us["p256"]!,
    ed25519SignUs: us["ed25519"]!,
    sha256JwtUs: us["sha256"]!,
  };
}

export function floorRows(f: Floors): BenchRow[] {
  return [
    { name: "floor: node:crypto RS256 verify", value: round(f.rs256VerifyUs), unit: "us/op" },
    { name: "floor: node:crypto P-256 sign", value: round(f.p256SignUs), unit: "us/op" },
    { name: "floor: node:crypto Ed25519 sign", value: round(f.ed25519SignUs), unit: "us/op" },
    { name: "floor: sha256 of a JWT (one-shot)", value: round(f.sha256JwtUs, 3), unit: "us/op" },
  ];
}
