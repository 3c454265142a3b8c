/**
 * Where an agent output's files go. An output turns a checked identity into a `FileSet` (data);
 * a destination is a place that writes a whole set atomically (a directory swap, one Secret
 * apply, memory), so a reader sees the previous complete set or the new one, never a mix.
 */

/** One file of a set: its bytes and, for destinations that have modes, its mode. */
export interface SetFile {
  readonly contents: Buffer;
  /** 0o600 for private keys, 0o644 otherwise. Destinations without modes ignore it. */
  readonly mode: 0o600 | 0o644;
}

/** A complete set of named files, written and read as one. */
export type FileSet = ReadonlyMap<string, SetFile>;

export interface Destination {
  /** For logs and errors: `directory /var/lib/bot`, `kubernetes_secret default/identity-output`. */
  readonly description: string;
  /**
   * Writes the whole set atomically. On failure the previous set is left exactly as it was and
   * the promise rejects with an `AgentError` that names the destination and never the contents.
   */
  write(set: FileSet): Promise<void>;
  /** The current complete set, or undefined when none was written yet. */
  read(): Promise<FileSet | undefined>;
}
