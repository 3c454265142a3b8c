import { createPrivateKey, type KeyObject } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { SshReader } from "../lib/ssh-wire.ts";

/**
 * The file side of the CA: reading keys with the checks an admin needs (each error names the
 * file), and writing new ones as one crash-safe set, never over an existing file.
 */

function problem(file: string, message: string): ConfigError {
  return new ConfigError([`${file}: ${message}`]);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

/** Whether a file exists (a dangling symlink or unreadable parent counts as existing: we try it). */
export function fileExists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (error) {
    return errorCode(error) !== "ENOENT";
  }
}

/** Reads a text file, or throws ConfigError naming it (missing, unreadable). */
export function readTextFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT") throw problem(file, `${what} is missing`);
    throw problem(file, `${what} is unreadable (${code ?? "error"})`);
  }
}

/**
 * Reads a private key file: refuses a file that group or others may read (chmod 600, or
 * `defaultMode: 0400` on a Kubernetes Secret volume), then parses PEM (PKCS#8, SEC1, PKCS#1) or
 * an unencrypted OpenSSH private key.
 */
export function readPrivateKeyFile(file: string, what: string): KeyObject {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    if (errorCode(error) === "ENOENT") throw problem(file, `${what} is missing`);
    throw problem(file, `${what} is unreadable (${errorCode(error) ?? "error"})`);
  }
  if (mode & 0o077) {
    throw problem(
      file,
      `${what} is readable by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); make it 0600 or 0400`,
    );
  }
  const text = readTextFile(file, what);
  try {
    if (text.includes("-----BEGIN OPENSSH PRIVATE KEY-----")) return parseOpenSshPrivateKey(text);
    return createPrivateKey({ key: text, format: "pem" });
  } catch {
    throw problem(file, `${what} is not a valid unencrypted private key`);
  }
}

/**
 * An unencrypted Ed25519 key in OpenSSH's own format (what `ssh-keygen -t ed25519 -N ''` writes;
 * see OpenSSH PROTOCOL.key). Other key types belong in PEM, which node:crypto reads itself.
 */
function parseOpenSshPrivateKey(text: string): KeyObject {
  const body =
    /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
      text,
    )?.[1];
  const blob = Buffer.from((body ?? "").replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (blob.subarray(0, magic.length).toString("latin1") !== magic) throw new RangeError("magic");
  const outer = new SshReader(blob.subarray(magic.length));
  const cipher = outer.string().toString("latin1");
  outer.string(); // kdf name
  outer.string(); // kdf options
  if (cipher !== "none" || outer.uint32() !== 1) throw new RangeError("encrypted or multi-key");
  outer.string(); // public key
  const inner = new SshReader(outer.string());
  if (inner.uint32() !== inner.uint32()) throw new RangeError("checkint");
  if (inner.string().toString("latin1") !== "ssh-ed25519") throw new RangeError("not ed25519");
  const publicKey = inner.string();
  const secret = inner.string();
  if (publicKey.length !== 32 || secret.length !== 64) throw new RangeError("key length");
  return createPrivateKey({
    key: {
      kty: "OKP",
      crv: "Ed25519",
      d: secret.subarray(0, 32).toString("base64url"),
      x: publicKey.toString("base64url"),
    },
    format: "jwk",
  });
}

/** Creates `dir` (and parents) with mode 0700 if missing; narrows an existing one to 0700. */
export function ensurePrivateDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw problem(dir, `cannot create the data directory (${errorCode(error) ?? "error"})`);
  }
  const stats = statSync(dir);
  if (!stats.isDirectory()) throw problem(dir, "the data directory is not a directory");
  if ((stats.mode & 0o077) !== 0) {
    try {
      chmodSync(dir, 0o700);
    } catch (error) {
      throw problem(
        dir,
        `the data directory is open to group or others and cannot be narrowed to 0700 (${errorCode(error) ?? "error"})`,
      );
    }
  }
}

/** A file of a set written together. */
export interface NewFile {
  /** A plain name inside the set's directory. */
  readonly name: string;
  readonly contents: string;
  readonly mode: number;
}

/** The temporary directory a set is staged in, and the marker that says it is complete. */
const STAGING_PREFIX = ".kube-join-new.";
const COMPLETE_MARKER = "COMPLETE";
/** The temporary files of single-file writes in releases before file sets (may hold keys). */
const STALE_TEMPORARY_FILE = /^\..+\.[0-9a-f]{12}\.tmp$/;

/**
 * Test hook (never set in production): `KUBE_JOIN_TEST_KILL_AT_WRITE_STEP=N` kills the process
 * with SIGKILL at the Nth step of writing a file set, so a test can crash a first start at every
 * point of it; `KUBE_JOIN_TEST_WRITE_STEP_DELAY_MS` sleeps at each step.
 */
function testHookStep(counter: { step: number }): void {
  counter.step += 1;
  const delay = Number(process.env["KUBE_JOIN_TEST_WRITE_STEP_DELAY_MS"] ?? 0);
  if (delay > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delay);
  if (Number(process.env["KUBE_JOIN_TEST_KILL_AT_WRITE_STEP"] ?? 0) === counter.step) {
    process.kill(process.pid, "SIGKILL");
  }
}

/**
 * Writes a set of new files into `dir` as a whole, so that a crash at any moment leaves either
 * none of them or, after `recoverFileSets` at the next start, all of them:
 *
 * 1. every file goes into a fresh staging directory (`.kube-join-new.XXXXXX`, mode 0700), each
 *    fsynced; then a `COMPLETE` marker, fsynced, and the staging directory fsynced;
 * 2. each file is hard-linked to its name in `dir` (never over an existing file), and `dir` is
 *    fsynced;
 * 3. the staging directory is removed.
 *
 * A crash in step 1 leaves an incomplete staging directory, which the next start removes; a
 * crash in step 2 or 3 leaves a complete one, which the next start finishes moving into place.
 *
 * @throws ConfigError naming the file when a name exists already or a write fails.
 */
export function writeNewFileSet(dir: string, files: readonly NewFile[]): void {
  const counter = { step: 0 };
  let staging: string;
  try {
    staging = mkdtempSync(join(dir, STAGING_PREFIX));
  } catch (error) {
    throw problem(dir, `cannot create a staging directory (${errorCode(error) ?? "error"})`);
  }
  try {
    for (const file of files) {
      writeSynced(join(staging, file.name), file.contents, file.mode);
      testHookStep(counter);
    }
    writeSynced(join(staging, COMPLETE_MARKER), `${files.map((f) => f.name).join("\n")}\n`, 0o600);
    fsyncPath(staging);
    testHookStep(counter);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true }); // never leave key bytes behind
    if (error instanceof ConfigError) throw error;
    throw problem(dir, `cannot write the new files (${errorCode(error) ?? "error"})`);
  }
  moveIntoPlace(dir, staging, files, counter);
}

/**
 * Finishes or discards what a crash left in `dir`: a complete staging directory is moved into
 * place, an incomplete one is removed, and temporary files of single writes are removed (they
 * may hold private keys). Call it at start, before looking at the files.
 */
export function recoverFileSets(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return; // a missing directory holds nothing to recover
  }
  for (const entry of entries) {
    const path = join(dir, entry);
    if (entry.startsWith(STAGING_PREFIX)) {
      let names: string[] | undefined;
      try {
        names = readFileSync(join(path, COMPLETE_MARKER), "utf8").split("\n").filter(Boolean);
      } catch {
        names = undefined;
      }
      if (names === undefined) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      const files = names.map((name) => ({
        name,
        contents: readFileSync(join(path, name), "utf8"),
        mode: statSync(join(path, name)).mode & 0o777,
      }));
      moveIntoPlace(dir, path, files, { step: 0 });
    } else if (STALE_TEMPORARY_FILE.test(entry)) {
      unlinkSync(path);
    }
  }
}

function moveIntoPlace(
  dir: string,
  staging: string,
  files: readonly NewFile[],
  counter: { step: number },
): void {
  for (const file of files) {
    const target = join(dir, file.name);
    try {
      linkSync(join(staging, file.name), target);
    } catch (error) {
      if (errorCode(error) !== "EEXIST") {
        throw problem(target, `cannot be written (${errorCode(error) ?? "error"})`);
      }
      // Linked before a crash (the same file), or written by someone else meanwhile.
      if (readFileSync(target, "utf8") !== file.contents) {
        throw problem(
          target,
          "appeared while kube-join was creating it (another instance?); start again",
        );
      }
    }
    testHookStep(counter);
  }
  fsyncPath(dir);
  testHookStep(counter);
  rmSync(staging, { recursive: true, force: true });
  fsyncPath(dir);
}

function writeSynced(file: string, contents: string, mode: number): void {
  const fd = openSync(file, "wx", mode);
  try {
    writeFileSync(fd, contents);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
