import { randomBytes, createPrivateKey, type KeyObject } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "../errors.ts";
import { SshReader } from "../lib/ssh-wire.ts";

/**
 * The file side of the CA: reading keys with the checks an admin needs (each error names the
 * file), and writing new ones atomically without ever replacing an existing file.
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

/**
 * Writes a new file atomically and never over an existing one: the bytes go to a temporary
 * file (created exclusively, fsynced), which is then hard-linked to its name; `link` fails if
 * the name exists, so a key another process wrote meanwhile is never replaced.
 */
export function writeNewFileAtomically(file: string, contents: string, mode: number): void {
  const dir = dirname(file);
  const temporary = join(dir, `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temporary, "wx", mode);
  try {
    writeFileSync(fd, contents); // loops until every byte is written, unlike one writeSync
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temporary); // never leave partial key bytes behind
    throw problem(file, `cannot be written (${errorCode(error) ?? "error"})`);
  }
  closeSync(fd);
  try {
    linkSync(temporary, file);
  } catch (error) {
    if (errorCode(error) === "EEXIST") {
      throw problem(
        file,
        "appeared while kube-join was creating it (another instance?); start again",
      );
    }
    throw problem(file, `cannot be written (${errorCode(error) ?? "error"})`);
  } finally {
    unlinkSync(temporary);
  }
  const dirFd = openSync(dir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
