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
import type { Bot, JoinToken, ResourceSet, SourcePosition } from "./types.ts";
import { formatProblem, parseYamlDocuments } from "../yaml/yaml-source.ts";

/** One resource file's text, named as messages should name it. */
export interface ResourceText {
  readonly file: string;
  readonly text: string;
}

/** The kinds kube-join loads, with the one version each must have. */
const VERSION_OF_KIND = { bot: "v1", token: "v2", lock: "v2" } as const;
type Kind = keyof typeof VERSION_OF_KIND;

/** A resource file larger than this is refused unread (resource files are small). */
export const MAX_RESOURCE_FILE_BYTES = 4 * 1024 * 1024;

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
  const found = await findResourceFiles(paths);
  const problems = [...found.problems];
  const sources: ResourceText[] = [];
  for (const file of found.files) {
    const read = await readResourceFile(file);
    if (typeof read === "string") problems.push(read);
    else sources.push({ file, text: read.toString("utf8") });
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
 * The files `paths` stand for (see `loadResources`), each once, in order; and the problems of
 * paths that cannot be read or directories without resource files.
 */
export async function findResourceFiles(
  paths: readonly string[],
): Promise<{ readonly files: readonly string[]; readonly problems: readonly string[] }> {
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
  const unique: string[] = [];
  for (const file of files) {
    const key = resolve(file);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(file);
  }
  return { files: unique, problems };
}

/** A resource file's bytes, or the problem that stops it being read (formatted). */
export async function readResourceFile(file: string): Promise<Buffer | string> {
  try {
    const info = await stat(file);
    // A FIFO or a device named as a resource file would block the read (or never end).
    if (!info.isFile()) return `${file}: not a regular file`;
    if (info.size > MAX_RESOURCE_FILE_BYTES) return tooLargeProblem(file);
    return await readFile(file);
  } catch (err) {
    return cannotReadProblem(file, err);
  }
}

/** The problem of a file over `MAX_RESOURCE_FILE_BYTES`. */
export function tooLargeProblem(file: string): string {
  return `${file}: larger than ${MAX_RESOURCE_FILE_BYTES / 1024 / 1024} MiB: not a resource file`;
}

/** The problem of a file that cannot be read (`err` from the file system). */
export function cannotReadProblem(file: string, err: unknown): string {
  return `${file}: cannot read: ${reason(err)}`;
}

/**
 * One `kind: bot`, `token` or `lock` document of a file, validated on its own: everything the
 * checks across files (unique names, `bot_name` references) need, so a file that did not change
 * between two loads is never parsed again (see `ResourceLoader`).
 */
export interface ParsedDocument {
  /** The kind, when kube-join loads it (undefined: skipped with a warning, or a problem). */
  readonly kind: Kind | undefined;
  /** `metadata.name` when it is a non-empty string, valid or not (a duplicate is reported anyway). */
  readonly name: string | undefined;
  /** Where `metadata.name` is (or would be) written. */
  readonly namePosition: SourcePosition;
  /** The valid resource, when the document had no problem. */
  readonly bot?: Bot | undefined;
  readonly token?: JoinToken | undefined;
  readonly lock?: Lock | undefined;
  /** A token's non-empty string `spec.bot_name`, checked against the bots of the whole set. */
  readonly botRef?: { readonly name: string; readonly position: SourcePosition } | undefined;
  /** This document's own problems, formatted (`file:line:col: path: message`). */
  readonly problems: readonly string[];
}

/** One file, parsed and validated on its own; `assembleResourceSet` checks the files together. */
export interface ParsedFile {
  readonly file: string;
  /** YAML syntax problems (formatted). */
  readonly problems: readonly string[];
  /** YAML warnings and the documents' warnings, in file order. */
  readonly warnings: readonly string[];
  readonly documents: readonly ParsedDocument[];
  /**
   * Whether what this file parsed to depends on the time of the load (a lock's `expires` that
   * has passed is a warning): such a file is parsed again on every load, never reused.
   */
  readonly timeDependent: boolean;
}

/**
 * Parses and validates the documents of one file, without the checks that need the other files
 * (names unique across the set, `bot_name` naming a loaded bot): `assembleResourceSet` does those.
 */
export function parseResourceFile(
  file: string,
  text: string,
  nowMs: number = Date.now(),
): ParsedFile {
  const stream = parseYamlDocuments(file, text);
  const warnings: string[] = [...stream.warnings];
  const documents: ParsedDocument[] = [];
  let timeDependent = false;
  for (const source of stream.documents) {
    if (source.value === null || source.value === undefined) continue; // empty document
    const diagnostics = new Diagnostics();
    const r = new FieldReader(source, diagnostics);
    const doc = source.value;
    const namePosition = source.positionOf(["metadata", "name"]);
    let parsed: Omit<ParsedDocument, "problems"> = {
      kind: undefined,
      name: undefined,
      namePosition,
    };
    if (!isPlainObject(doc)) {
      r.error(
        [],
        `a resource must be a mapping with kind, version, metadata and spec, got ${describe(doc)}`,
      );
    } else {
      const kind = readKind(r, doc);
      if (kind === "bot") {
        parsed = { kind, name: nameOf(doc), namePosition, bot: readBot(r, doc) };
      } else if (kind === "token") {
        const token = readToken(r, doc);
        // Checked even when the token has other problems, so one run reports everything.
        const botName = isPlainObject(doc["spec"]) ? doc["spec"]["bot_name"] : undefined;
        const botRef =
          typeof botName === "string" && botName !== ""
            ? { name: botName, position: source.positionOf(["spec", "bot_name"]) }
            : undefined;
        parsed = { kind, name: nameOf(doc), namePosition, token, botRef };
      } else if (kind === "lock") {
        timeDependent = true;
        parsed = { kind, name: nameOf(doc), namePosition, lock: readLock(r, doc, nowMs) };
      }
    }
    warnings.push(...diagnostics.warnings);
    documents.push({ ...parsed, problems: diagnostics.problems });
  }
  return { file, problems: stream.problems, warnings, documents, timeDependent };
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
  return assembleResourceSet(sources.map(({ file, text }) => parseResourceFile(file, text, nowMs)));
}

/**
 * The checks across files, over files parsed one by one: all-or-nothing, and the same problems in
 * the same order as if all files had been read together.
 *
 * @throws ConfigError with every problem of every file, `file:line:col: path: message`.
 */
export function assembleResourceSet(files: readonly ParsedFile[]): ResourceSet {
  const steps = assemblySteps(files);
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/**
 * `assembleResourceSet` in slices of `filesPerSlice` files, yielding to the event loop between
 * them: at 10,000 tokens the checks across files take 35-55 ms of CPU, one stall too many for
 * the joins served meanwhile.
 *
 * @throws ConfigError as `assembleResourceSet` does.
 */
export async function assembleResourceSetInSlices(
  files: readonly ParsedFile[],
  filesPerSlice = 10,
): Promise<ResourceSet> {
  const steps = assemblySteps(files);
  for (let n = 1; ; n++) {
    const step = steps.next();
    if (step.done === true) return step.value;
    if (n % filesPerSlice === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The checks across files, yielding after each file. */
function* assemblySteps(files: readonly ParsedFile[]): Generator<void, ResourceSet> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const bots = new Map<string, Bot>();
  const tokens = new Map<string, JoinToken>();
  const locks = new Map<string, Lock>();
  // Names seen, valid or not, so a duplicate is reported even when the first copy had problems.
  const botNames = new Map<string, SourcePosition>();
  const tokenNames = new Map<string, SourcePosition>();
  const lockNames = new Map<string, SourcePosition>();
  const botRefs: { readonly name: string; readonly position: SourcePosition }[] = [];

  for (const parsed of files) {
    problems.push(...parsed.problems);
    warnings.push(...parsed.warnings);
    for (const doc of parsed.documents) {
      const { kind, name } = doc;
      if (kind !== undefined && name !== undefined) {
        const names = kind === "bot" ? botNames : kind === "token" ? tokenNames : lockNames;
        const first = names.get(name);
        if (first !== undefined) {
          problems.push(
            formatProblem(
              doc.namePosition,
              ["metadata", "name"],
              `duplicate ${kind} name ${JSON.stringify(name)}: already defined at ${first.file}:${first.line}:${first.col}`,
            ),
          );
        } else {
          names.set(name, doc.namePosition);
          if (doc.bot !== undefined) bots.set(doc.bot.name, doc.bot);
          if (doc.token !== undefined) tokens.set(doc.token.name, doc.token);
          if (doc.lock !== undefined) locks.set(doc.lock.name, doc.lock);
        }
      }
      problems.push(...doc.problems);
      if (doc.botRef !== undefined) botRefs.push(doc.botRef);
    }
    yield;
  }

  for (const { name, position } of botRefs) {
    // A bot that is present but has problems of its own is reported there, not here.
    if (botNames.has(name)) continue;
    const known = [...botNames.keys()];
    const hint =
      known.length === 0
        ? "no bot is loaded: add its kind: bot resource"
        : `bots loaded: ${known.map((n) => JSON.stringify(n)).join(", ")}`;
    problems.push(
      formatProblem(
        position,
        ["spec", "bot_name"],
        `names no loaded bot ${JSON.stringify(name)} (${hint})`,
      ),
    );
  }

  const fileNames = files.map((f) => f.file);
  if (problems.length > 0) throw new ConfigError(inFileOrder(problems, fileNames));
  return { bots, tokens, locks, warnings, files: fileNames };
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
