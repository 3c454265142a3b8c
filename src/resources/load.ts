/**
 * Loads bot, token and lock resources (`tctl create` style YAML) and validates them as a whole:
 * all-or-nothing, every problem reported as `file:line:col: field.path: message`.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import type { Lock } from "../locks/lock.ts";
import { readBot } from "./bot.ts";
import { readLock } from "./lock.ts";
import { isPlainObject } from "../lib/plain-object.ts";
import { Diagnostics, FieldReader, describe, inFileOrder } from "../yaml/field-reader.ts";
import { readToken } from "./token.ts";
import type { Bot, JoinToken, ResourceSet } from "./types.ts";
import { parseYamlDocuments } from "../yaml/yaml-source.ts";

/** One resource file's text, named as messages should name it. */
export interface ResourceText {
  readonly file: string;
  readonly text: string;
}

/** The kinds kube-join loads, with the one version each must have. */
const VERSION_OF_KIND = { bot: "v1", token: "v2", lock: "v2" } as const;
type Kind = keyof typeof VERSION_OF_KIND;

/** A resource file larger than this is refused unread (resource files are small). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads files and directories of resources and validates them together (see `parseResources`).
 * A directory contributes every `*.yaml` and `*.yml` file directly inside it, sorted by name; it
 * is not searched recursively, and names starting with `.` are skipped (so the `..data` links of a
 * mounted Kubernetes ConfigMap are not read twice). A path named twice is read once.
 *
 * @throws ConfigError with every problem of every file, including unreadable paths.
 * @example const resources = await loadResources(["/etc/kube-join/resources"]);
 */
export async function loadResources(paths: readonly string[]): Promise<ResourceSet> {
  const problems: string[] = [];
  const files: string[] = [];
  for (const path of paths) {
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const entries = (await readdir(path)).filter(
          (n) => /\.ya?ml$/.test(n) && !n.startsWith("."),
        );
        entries.sort();
        const inDir: string[] = [];
        let unreadable = 0;
        for (const entry of entries) {
          const file = join(path, entry);
          try {
            if ((await stat(file)).isFile()) inDir.push(file);
          } catch (err) {
            unreadable++;
            problems.push(`${file}: cannot read: ${reason(err)}`);
          }
        }
        if (inDir.length === 0 && unreadable === 0) {
          problems.push(`${path}: directory holds no *.yaml or *.yml file`);
        }
        files.push(...inDir);
      } else {
        files.push(path);
      }
    } catch (err) {
      problems.push(`${path}: cannot read: ${reason(err)}`);
    }
  }
  const seen = new Set<string>();
  const sources: ResourceText[] = [];
  for (const file of files) {
    const key = resolve(file);
    if (seen.has(key)) continue;
    seen.add(key);
    try {
      const info = await stat(file);
      if (info.size > MAX_FILE_BYTES) {
        problems.push(
          `${file}: larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB: not a resource file`,
        );
        continue;
      }
      sources.push({ file, text: await readFile(file, "utf8") });
    } catch (err) {
      problems.push(`${file}: cannot read: ${reason(err)}`);
    }
  }
  let set: ResourceSet | undefined;
  try {
    set = parseResources(sources);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (set === undefined || problems.length > 0) throw new ConfigError(problems);
  return set;
}

/**
 * Validates resource texts as one set, without touching the file system (what `loadResources`
 * does after reading). Documents of other kinds are skipped with a warning; empty documents are
 * ignored. Beyond each document's own checks, names must be unique per kind and every token's
 * `bot_name` must name a bot of the set.
 *
 * @throws ConfigError whose `problems` are all problems found, each `file:line:col: path: message`.
 * @example
 *   const set = parseResources([{ file: "bot.yaml", text }, { file: "bot-token.yaml", text: t }]);
 *   set.tokens.get("example-bot")?.kubernetes?.type; // "static_jwks"
 */
export function parseResources(
  sources: readonly ResourceText[],
  nowMs: number = Date.now(),
): ResourceSet {
  const diagnostics = new Diagnostics();
  const bots = new Map<string, Bot>();
  const tokens = new Map<string, JoinToken>();
  const locks = new Map<string, Lock>();
  // Names seen, valid or not, so a duplicate is reported even when the first copy had problems.
  const botNames = new Map<string, FieldReader>();
  const tokenNames = new Map<string, FieldReader>();
  const lockNames = new Map<string, FieldReader>();
  const botRefs: { botName: string; reader: FieldReader }[] = [];

  for (const { file, text } of sources) {
    const stream = parseYamlDocuments(file, text);
    diagnostics.problems.push(...stream.problems);
    diagnostics.warnings.push(...stream.warnings);
    for (const source of stream.documents) {
      if (source.value === null || source.value === undefined) continue; // empty document
      const r = new FieldReader(source, diagnostics);
      const doc = source.value;
      if (!isPlainObject(doc)) {
        r.error(
          [],
          `a resource must be a mapping with kind, version, metadata and spec, got ${describe(doc)}`,
        );
        continue;
      }
      const kind = readKind(r, doc);
      if (kind === undefined) continue;
      const name = nameOf(doc);
      const names = kind === "bot" ? botNames : kind === "token" ? tokenNames : lockNames;
      const first = name === undefined ? undefined : names.get(name);
      if (name !== undefined && first !== undefined) {
        const at = first.source.positionOf(["metadata", "name"]);
        r.error(
          ["metadata", "name"],
          `duplicate ${kind} name ${JSON.stringify(name)}: already defined at ${at.file}:${at.line}:${at.col}`,
        );
      } else if (name !== undefined) {
        names.set(name, r);
      }
      if (kind === "bot") {
        const bot = readBot(r, doc);
        if (bot !== undefined && first === undefined) bots.set(bot.name, bot);
      } else if (kind === "lock") {
        const lock = readLock(r, doc, nowMs);
        if (lock !== undefined && first === undefined) locks.set(lock.name, lock);
      } else {
        const token = readToken(r, doc);
        if (token !== undefined && first === undefined) tokens.set(token.name, token);
        // Checked even when the token has other problems, so one run reports everything.
        const botName = isPlainObject(doc["spec"]) ? doc["spec"]["bot_name"] : undefined;
        if (typeof botName === "string" && botName !== "") botRefs.push({ botName, reader: r });
      }
    }
  }

  for (const { botName, reader } of botRefs) {
    // A bot that is present but has problems of its own is reported there, not here.
    if (botNames.has(botName)) continue;
    const known = [...botNames.keys()];
    const hint =
      known.length === 0
        ? "no bot is loaded: add its kind: bot resource"
        : `bots loaded: ${known.map((n) => JSON.stringify(n)).join(", ")}`;
    reader.error(["spec", "bot_name"], `names no loaded bot ${JSON.stringify(botName)} (${hint})`);
  }

  if (diagnostics.problems.length > 0) {
    throw new ConfigError(
      inFileOrder(
        diagnostics.problems,
        sources.map((s) => s.file),
      ),
    );
  }
  return {
    bots,
    tokens,
    locks,
    warnings: diagnostics.warnings,
    files: sources.map((s) => s.file),
  };
}

/** Checks `kind` and `version`; returns the kind when kube-join loads it. */
function readKind(r: FieldReader, doc: Record<string, unknown>): Kind | undefined {
  const kind = r.requiredString(["kind"], doc["kind"], 'must be set ("bot", "token" or "lock")');
  if (kind === undefined) return undefined;
  if (!isKind(kind)) {
    if (isKind(kind.toLowerCase())) {
      r.error(
        ["kind"],
        `must be ${JSON.stringify(kind.toLowerCase())} (lowercase), got ${JSON.stringify(kind)}`,
      );
    } else {
      r.warn(["kind"], `${JSON.stringify(kind)} is not a kind kube-join uses: skipped`);
    }
    return undefined;
  }
  const want = VERSION_OF_KIND[kind];
  const version = r.requiredString(
    ["version"],
    doc["version"],
    `must be set to ${JSON.stringify(want)}`,
  );
  if (version === undefined) return undefined;
  if (version !== want) {
    r.error(
      ["version"],
      `must be ${JSON.stringify(want)} for kind ${kind}, got ${JSON.stringify(version)}`,
    );
    return undefined;
  }
  return kind;
}

function isKind(kind: string): kind is Kind {
  return Object.hasOwn(VERSION_OF_KIND, kind);
}

function nameOf(doc: Record<string, unknown>): string | undefined {
  const metadata = doc["metadata"];
  const name = isPlainObject(metadata) ? metadata["name"] : undefined;
  return typeof name === "string" && name !== "" ? name : undefined;
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file or directory";
  if (code === "EACCES") return "permission denied";
  return (err as Error).message;
}
