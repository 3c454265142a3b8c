import * as nodeFs from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { AgentError } from "./agent-error.ts";
import { IDENTITY_FILE_NAMES } from "./identity.ts";
import type { IdentityFile, IdentitySummary } from "./identity.ts";

/** The file-system calls the store makes; injectable so a test can fail one of them. */
export type IdentityFs = Pick<
  typeof nodeFs,
  "mkdir" | "mkdtemp" | "open" | "rename" | "symlink" | "rm" | "readdir" | "readlink" | "chmod"
>;

/** The symlink readers resolve once, then read every file of the set through the result. */
const CURRENT_LINK = "current";
const GENERATION_PREFIX = "gen-";
const STAGING_PREFIX = ".staging-";

/**
 * Writes one identity set so that no reader ever sees a half-written or mixed set:
 *
 * 1. every file goes into a fresh staging directory inside `dir` (same file system), each
 *    fsynced, with its mode set explicitly (`tls.key`, `ssh_key`: 0600), `identity.json` last;
 * 2. the staging directory is fsynced and renamed to an immutable `gen-<time>-<random>`;
 * 3. a new `current` symlink pointing at it replaces the old one with `rename(2)`, which is
 *    atomic: `current` names the old complete set or the new complete set, never anything else;
 * 4. `dir/<file>` convenience links (`tls.crt -> current/tls.crt`, ...) are created once;
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
  files: readonly IdentityFile[],
  options: {
    now: Date;
    fs?: IdentityFs;
    /** Told about failures after the swap (steps 4-5, the directory fsync), which do not throw. */
    warn?: (message: string) => void;
  },
): Promise<string> {
  const fs = options.fs ?? nodeFs;
  const ordered = [...files].sort(
    (a, b) => IDENTITY_FILE_NAMES.indexOf(a.name) - IDENTITY_FILE_NAMES.indexOf(b.name),
  );
  let staging: string | undefined;
  let generation: string | undefined;
  let previous: string | undefined;
  try {
    await fs.mkdir(dir, { recursive: true });
    previous = await currentTarget(fs, dir);
    staging = await fs.mkdtemp(join(dir, STAGING_PREFIX));
    // mkdtemp makes it 0700; certificates are public, and the keys carry their own 0600.
    await fs.chmod(staging, 0o755);
    for (const file of ordered) {
      await writeFileDurably(fs, join(staging, file.name), file.contents, file.mode);
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
  await ensureConvenienceLinks(fs, dir).catch(warn("updating the convenience links"));
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
 * Reads the current set's `identity.json` the way a workload should: resolve `current` once,
 * then read from the generation directory it names. Returns `undefined` when there is none.
 */
export async function readCurrentIdentity(
  dir: string,
): Promise<{ directory: string; summary: IdentitySummary } | undefined> {
  const target = await currentTarget(nodeFs, dir);
  if (target === undefined) return undefined;
  const directory = join(dir, target);
  const summary = JSON.parse(
    await nodeFs.readFile(join(directory, "identity.json"), "utf8"),
  ) as IdentitySummary;
  return { directory, summary };
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
  contents: string,
  mode: number,
): Promise<void> {
  // "wx": a fresh file only, created with the final mode so a key is never briefly readable.
  const handle = await fs.open(path, "wx", mode);
  try {
    await handle.writeFile(contents, "utf8");
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

async function ensureConvenienceLinks(fs: IdentityFs, dir: string): Promise<void> {
  for (const name of IDENTITY_FILE_NAMES) {
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
