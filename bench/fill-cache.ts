// Run as its own process by bench/run.ts: fills the verified-token cache to its bound with
// realistic identities and prints the process RSS, so the figure is not mixed with the bench's own
// memory.
import { randomUUID } from "node:crypto";
import type { VerifiedProof } from "../src/methods/join-method.ts";
import { toVerifiedServiceAccount } from "../src/methods/kubernetes/method.ts";
import type { ServiceAccountIdentity } from "../src/methods/kubernetes/service-account.ts";
import { VerifiedTokenCache } from "../src/methods/verified-token-cache.ts";

const maxEntries = Number(process.argv[2] ?? 100_000);
global.gc?.();
const baselineRss = process.memoryUsage().rss;
const cache = new VerifiedTokenCache<VerifiedProof>({ maxEntries, now: () => Date.now() });
const exp = Math.floor(Date.now() / 1000) + 1800;
const revision = "r".repeat(22);
for (let i = 0; i < maxEntries + 1000; i++) {
  // Through JSON, as verification produces them: flat strings, not the ropes templates build.
  const identity: ServiceAccountIdentity = JSON.parse(
    JSON.stringify({
      subject: `system:serviceaccount:team-${i % 50}:tbot-${i}`,
      namespace: `team-${i % 50}`,
      serviceAccount: `tbot-${i}`,
      serviceAccountUid: randomUUID(),
      podName: `tbot-6d4cf56db6-${i.toString(36).padStart(5, "x")}`,
      podUid: randomUUID(),
      nodeName: `ip-10-0-${i % 250}-${i % 200}.eu-west-1.compute.internal`,
      issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
      jti: randomUUID(),
      issuedAt: exp - 600,
      expiresAt: exp,
    }),
  );
  cache.set(
    VerifiedTokenCache.keyOf(`jwt-${i}-${randomUUID()}`, revision, "bench.example.com", undefined),
    // What a join caches: the identity shaped once (names for the rules, rendered attributes).
    toVerifiedServiceAccount(identity),
  );
}
global.gc?.();
const { rss, heapUsed } = process.memoryUsage();
console.log(
  JSON.stringify({
    entries: cache.size,
    rssMiB: rss / 1048576,
    heapMiB: heapUsed / 1048576,
    baselineRssMiB: baselineRss / 1048576,
  }),
);
