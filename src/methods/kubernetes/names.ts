/**
 * The shapes of Kubernetes object names, shared by the JWT verifier (names a token carries) and
 * the resource loader (names an allow rule may mention). Leaf module: imports nothing of ours.
 */

/** A DNS label (RFC 1123): what a namespace name must be. At most 63 characters. */
export const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * A DNS subdomain (RFC 1123): dot-separated DNS labels, at most 253 characters in all; what
 * service-account and pod names must be. `a..b`, `a.-b` and `a-.b` are not.
 */
export const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
