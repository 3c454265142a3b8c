// Keeps the layers of docs/architecture.md true as the code grows: dependencies point one way, and
// each third-party library stays in the one layer that owns it.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "leaves-import-only-leaves",
      comment:
        "errors.ts and the src/lib/ folder (durations, timestamps, wire formats, name patterns, the bounded body reader) are the bottom layer",
      severity: "error",
      from: { path: "^src/(errors\\.ts$|lib/)" },
      to: { path: "^src/(?!errors\\.ts$|lib/)" },
    },
    {
      name: "yaml-reader-imports-only-leaves",
      comment:
        "src/yaml/ (the one reader of config, resources and the agent's config) sits below all of them: only errors, src/lib/ and the yaml package",
      severity: "error",
      from: { path: "^src/yaml/" },
      to: { path: "^src/(?!errors\\.ts$|lib/|yaml/)|node_modules/(?!yaml/)" },
    },
    {
      name: "core-has-no-io-shell",
      comment:
        "jwt, methods, ca, resources never reach up into join, http, metrics, audit or wiring",
      severity: "error",
      from: { path: "^src/(jwt|methods|ca|resources)/" },
      to: { path: "^src/(join|http|metrics|audit|commands|config|agent|cli|service)" },
    },
    {
      name: "methods-below-join-ca-resources",
      comment:
        "a join method reads its spec and authenticates; the pipeline, the CA, the resource loader and HTTP use it, never the other way",
      severity: "error",
      from: { path: "^src/methods/" },
      to: { path: "^src/(join|http|ca|resources)/" },
    },
    {
      name: "ca-knows-no-method-or-resource",
      comment: "the CA takes the bot and its join attributes as ready values",
      severity: "error",
      from: { path: "^src/ca/" },
      to: { path: "^src/(methods|resources)/" },
    },
    {
      name: "jwt-is-method-neutral",
      comment:
        "src/jwt/ holds the checks any JWT-based method reuses; method specifics live in methods/",
      severity: "error",
      from: { path: "^src/jwt/" },
      to: { path: "^src/methods/" },
    },
    {
      name: "join-has-no-http",
      severity: "error",
      from: { path: "^src/join/" },
      to: { path: "^src/(http|metrics|audit|commands|cli)|node_modules/express" },
    },
    {
      name: "listeners-do-not-reach-into-join-logic",
      comment: "metrics and audit only consume join events (types)",
      severity: "error",
      from: { path: "^src/(metrics|audit)/" },
      to: { path: "^src/(join/(?!events)|http|commands|jwt|ca|resources|methods/(?!join-method))" },
    },
    {
      name: "jose-is-a-dev-dependency",
      comment:
        "tests and bench use jose; the service verifies with node:crypto (docs/architecture.md)",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "node_modules/jose" },
    },
    {
      name: "peculiar-x509-is-a-dev-dependency",
      comment:
        "the tests' ASN.1 oracle; the service builds its certificates from src/ca/der.ts (docs/ca.md)",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "node_modules/@peculiar/" },
    },
    {
      name: "agent-shares-only-leaves",
      comment:
        "the bot-side client talks HTTP to the service and uses only our leaf modules; its " +
        "config-file reader and the kubeconfig reader are the exceptions below",
      severity: "error",
      from: {
        path: "^src/agent/",
        pathNot: "^src/agent/(config-file|kubernetes/kubeconfig)\\.ts$",
      },
      to: { path: "^src/(?!agent/|errors\\.ts$|lib/)" },
    },
    {
      name: "agent-config-reads-through-the-admin-yaml-reader",
      comment:
        "tbot.yaml is admin YAML: read with src/yaml's FieldReader, so its errors read like " +
        "every other admin file's (file:line:col, all at once, did you mean)",
      severity: "error",
      from: { path: "^src/agent/config-file\\.ts$" },
      to: { path: "^src/(?!agent/|errors\\.ts$|lib/|yaml/)" },
    },
    {
      name: "agent-kubeconfig-reads-yaml-through-our-reader",
      comment:
        "a kubeconfig is YAML: the kubernetes_secret destination's reader uses src/yaml's " +
        "parser (positions in messages, alias limits) rather than a second YAML library",
      severity: "error",
      from: { path: "^src/agent/kubernetes/kubeconfig\\.ts$" },
      to: { path: "^src/(?!agent/|errors\\.ts$|lib/|yaml/yaml-source\\.ts$)" },
    },
    {
      name: "yaml-only-in-resource-loading",
      severity: "error",
      from: { pathNot: "^src/yaml/" },
      to: { path: "node_modules/yaml" },
    },
    {
      name: "express-only-in-http",
      severity: "error",
      from: { pathNot: "^src/http/" },
      to: { path: "node_modules/express" },
    },
    {
      name: "prom-client-only-in-metrics",
      severity: "error",
      from: { pathNot: "^src/metrics/" },
      to: { path: "node_modules/prom-client" },
    },
    {
      name: "database-clients-only-in-their-adapters",
      comment: "pg only in the PostgreSQL adapter, better-sqlite3 only in the SQLite driver loader",
      severity: "error",
      from: { pathNot: "^src/store/(postgres-store|sqlite-driver)\\.ts$" },
      to: { path: "node_modules/(pg|pg-[a-z-]+|better-sqlite3)/" },
    },
    {
      name: "join-sees-only-the-store-ports",
      comment: "the join pipeline depends on the ports in src/join/, never on an engine's adapter",
      severity: "error",
      from: { path: "^src/(join|http|ca|resources|methods)/" },
      to: { path: "^src/store/" },
    },
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
  },
};
