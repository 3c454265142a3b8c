import { createHash, generateKeyPairSync, sign, verify } from "node:crypto";
import { microsPerCall, round, type BenchRow } from "./measure.ts";

/**
 * The floors of this machine: what node:crypto itself costs for the primitives kube-join is built
 * on. Every other figure is read as a ratio to one of these, measured in the same run.
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
  return {
    rs256VerifyUs: microsPerCall(() => verify("sha256", data, rsa.publicKey, rsaSig)),
    p256SignUs: microsPerCall(() => sign("sha256", tbs, ec.privateKey)),
    ed25519SignUs: microsPerCall(() => sign(null, tbs, ed.privateKey)),
    sha256JwtUs: microsPerCall(() => createHash("sha256").update(sampleJwt).digest()),
  };
}

export function floorRows(f: Floors): BenchRow[] {
  return [
    { name: "floor: node:crypto RS256 verify", value: round(f.rs256VerifyUs), unit: "us/op" },
    { name: "floor: node:crypto P-256 sign", value: round(f.p256SignUs), unit: "us/op" },
    { name: "floor: node:crypto Ed25519 sign", value: round(f.ed25519SignUs), unit: "us/op" },
    { name: "floor: sha256 of a JWT", value: round(f.sha256JwtUs, 3), unit: "us/op" },
  ];
}
