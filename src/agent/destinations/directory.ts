import * as nodeFs from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { AgentError } from "../agent-error.ts";
import type { Destination, FileSet, SetFile } from "./destination.ts";

/** The file-system calls the store makes; injectable so a test can fail one of them. */
export type IdentityFs = Pick<
  typeof nodeFs,
  "mkdir" | "mkdtemp" | "open" | "rename" | "symlink" | "rm" | "readdir" | "readlink" | "chmod"
>;

/** The symlink readers resolve once, then read every file of the set through the result. */
const CURRENT_LINK = "current";
const GENERATION_PREFIX = "gen-";
const STAGING_PREFIX = ".staging-";
const SET_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Writes one identity set so that no reader ever sees a half-written or mixed set:
 *
 * 1. every file goes into a fresh staging directory inside `dir` (same file system), in the set's
 *    order (an output puts the file that marks a set complete last: `identity.json`), each
 *    fsynced, with its mode set explicitly (private keys: 0600);
 * 2. the staging directory is fsynced and renamed to an immutable `gen-<time>-<random>`;
 * 3. a new `current` symlink pointing at it replaces the old one with `rename(2)`, which is
 *    atomic: `current` names the old complete set or the new complete set, never anything else;
 * 4. `dir/<file>` convenience links (`tls.crt -> current/tls.crt`, ...) are created once per name;
 * 5. generations other than the new one and the one it replaced are removed, so a reader that
 *    resolved `current` just before the swap can still finish reading its set.
 *
 * Any failure up to step 3 removes the staging directory and leaves the previous set exactly as
 * it was; the error is `AgentError("write_failed")`. Once step 3 succeeded the new set is live and
 * the write succeeds: later failures (the directory fsync, steps 4-5) go to `options.warn`.
 * Returns the new generation's directory.
 */
export async function writeIdentitySet(
  dir: string,
  set: FileSet,
  options: {
    now: Date;
    fs?: IdentityFs;
    /** Told about failures after the swap (steps 4-5, the directory fsync), which do not throw. */
    warn?: (message: string) => void;
  },
): Promise<string> {
  const fs = options.fs ?? nodeFs;
  for (const name of set.keys()) {
    // A name is one path component of ours: never `..`, a slash, or one of our own entries.
    if (!SET_FILE_NAME.test(name) || name === CURRENT_LINK || name.startsWith(GENERATION_PREFIX)) {
      throw new TypeError(`writeIdentitySet: ${JSON.stringify(name)} is not a file name for a set`);
    }
  }
  let staging: string | undefined;
  let generation: string | undefined;
  let previous: string | undefined;
  try {
    await fs.mkdir(dir, { recursive: true });
    previous = await currentTarget(fs, dir);
    staging = await fs.mkdtemp(join(dir, STAGING_PREFIX));
    // mkdtemp makes it 0700; certificates are public, and the keys carry their own 0600.
    await fs.chmod(staging, 0o755);
    for (const [name, file] of set) {
      await writeFileDurably(fs, join(staging, name), file.contents, file.mode);
    }
    await fsyncDirectory(fs, staging);
    const stamp = options.now.toISOString().replace(/[-:.]/g, "");
    generation = `${GENERATION_PREFIX}${stamp}-${randomBytes(4).toString("hex")}`;
    await fs.rename(staging, join(dir, generation));
    staging = undefined;
    await replaceSymlink(fs, dir, CURRENT_LINK, generation);
  } catch (err) {
    if (staging !== undefined) await fs.rm(staging, { recursive: true, force: true }).catch(noop);
    if (generation !== undefined && (await currentTarget(fs, dir).catch(noop)) !== generation) {
      await fs.rm(join(dir, generation), { recursive: true, force: true }).catch(noop);
    }
    if (err instanceof AgentError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new AgentError(
      "write_failed",
      `writing the identity to ${dir}: ${code ?? (err as Error).message}`,
    );
  }
  // The new set is live from here on: a failure of a later step is reported, not thrown, so the
  // agent does not re-join (and mint another identity) for a set that readers already see.
  const warn = (step: string) => (err: unknown) =>
    options.warn?.(`identity written, but ${step} failed in ${dir}: ${describe(err)}`);
  await fsyncDirectory(fs, dir).catch(warn("fsync of the directory"));
  await ensureConvenienceLinks(fs, dir, [...set.keys()]).catch(
    warn("updating the convenience links"),
  );
  await prune(fs, dir, new Set([generation, ...(previous === undefined ? [] : [previous])])).catch(
    warn("removing old generations"),
  );
  return join(dir, generation);
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ?? (err instanceof Error ? err.message : String(err));
}

/**
 * Reads the current set the way a workload should: resolve `current` once, then read every file
 * from the generation directory it names. Returns `undefined` when there is none.
 */
export async function readCurrentSet(
  dir: string,
): Promise<{ directory: string; set: FileSet } | undefined> {
  const target = await currentTarget(nodeFs, dir);
  if (target === undefined) return undefined;
  const directory = join(dir, target);
  const set = new Map<string, SetFile>();
  for (const name of (await nodeFs.readdir(directory)).sort()) {
    const path = join(directory, name);
    const [contents, stat] = await Promise.all([nodeFs.readFile(path), nodeFs.stat(path)]);
    set.set(name, { contents, mode: (stat.mode & 0o077) === 0 ? 0o600 : 0o644 });
  }
  return { directory, set };
}

/**
 * The `directory` destination: `path` holds a `current` symlink to an immutable generation
 * directory per write (`writeIdentitySet`), and a convenience link per file name.
 */
export function createDirectoryDestination(options: {
  readonly path: string;
  readonly now: () => Date;
  readonly fs?: IdentityFs;
  /** Told about failures after the swap, which do not fail the write. */
  readonly warn?: (message: string) => void;
}): Destination {
  return {
    description: `directory ${options.path}`,
    async write(set) {
      await writeIdentitySet(options.path, set, {
        now: options.now(),
        ...(options.fs === undefined ? {} : { fs: options.fs }),
        ...(options.warn === undefined ? {} : { warn: options.warn }),
      });
    },
    async read() {
      try {
        return (await readCurrentSet(options.path))?.set;
      } catch (err) {
        throw new AgentError(
          "write_failed",
          `reading the identity in ${options.path}: ${describe(err)}`,
        );
      }
    },
  };
}

async function currentTarget(fs: IdentityFs, dir: string): Promise<string | undefined> {
  try {
    return await fs.readlink(join(dir, CURRENT_LINK));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function writeFileDurably(
  fs: IdentityFs,
  path: string,
  contents: Buffer,
  mode: number,
): Promise<void> {
  // "wx": a fresh file only, created with the final mode so a key is never briefly readable.
  const handle = await fs.open(path, "wx", mode);
  try {
    await handle.writeFile(contents);
    await handle.chmod(mode); // the umask may have narrowed or the creation mode widened it
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsyncDirectory(fs: IdentityFs, path: string): Promise<void> {
  const handle = await fs.open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function replaceSymlink(
  fs: IdentityFs,
  dir: string,
  name: string,
  target: string,
): Promise<void> {
  const temporary = join(dir, `.${name}-${randomBytes(4).toString("hex")}`);
  await fs.symlink(target, temporary);
  try {
    await fs.rename(temporary, join(dir, name));
  } catch (err) {
    await fs.rm(temporary, { force: true }).catch(noop);
    throw err;
  }
}

async function ensureConvenienceLinks(
  fs: IdentityFs,
  dir: string,
  names: readonly string[],
): Promise<void> {
  for (const name of names) {
    const target = `${CURRENT_LINK}/${name}`;
    const existing = await fs.readlink(join(dir, name)).catch(noop);
    if (existing !== target) await replaceSymlink(fs, dir, name, target);
  }
}

async function prune(fs: IdentityFs, dir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const entry of await fs.readdir(dir)) {
    const stale =
      (entry.startsWith(GENERATION_PREFIX) && !keep.has(entry)) || entry.startsWith(STAGING_PREFIX);
    if (stale) await fs.rm(join(dir, entry), { recursive: true, force: true });
  }
}

function noop(): undefined {
  return undefined;
}
