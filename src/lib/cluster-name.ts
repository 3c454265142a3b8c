/**
 * What a cluster name may be. The config loader checks it at load and the CA again when it is
 * built; it lives in this leaf so that importing the config loader does not load the CA (and its
 * crypto libraries). Leaf module: imports nothing of ours.
 */

/** A letter or digit, then letters, digits, `.`, `_`, `-`: it names the CA and, lower-cased, the SPIFFE trust domain. */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
