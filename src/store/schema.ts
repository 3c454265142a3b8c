/**
 * The database schema, as numbered migrations applied in order at start. `schema_version` holds
 * one row per applied migration; a database whose newest row is above `SCHEMA_VERSION` was
 * written by a newer kube-join, and this one refuses to start on it rather than guess.
 *
 * Each migration is written once per engine: SQLite and PostgreSQL differ in the JSON type and
 * little else, and two short SQL texts read better than a query builder's output.
 *
 * No index beyond the two keys: every index is one more B-tree written by every join (measured:
 * about 13 us of a SQLite join's 42 us for two more), and the reads that would use one are rare
 * (`instances list --bot` is served by the unique key, whose first column is the bot; the sweep
 * scans the table every 10 minutes).
 */
import { StoreOpenError } from "./store.ts";

export interface Migration {
  readonly version: number;
  readonly sqlite: string;
  readonly postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sqlite: `
      CREATE TABLE bot_instances (
        bot_instance_id TEXT PRIMARY KEY,
        bot_name TEXT NOT NULL,
        token_name TEXT NOT NULL,
        pod_uid TEXT NOT NULL,
        generation INTEGER NOT NULL,
        join_method TEXT NOT NULL,
        join_type TEXT NOT NULL,
        namespace TEXT NOT NULL,
        service_account TEXT NOT NULL,
        pod_name TEXT NOT NULL,
        node_name TEXT,
        first_join_ms INTEGER NOT NULL,
        last_join_ms INTEGER NOT NULL,
        tls_serial TEXT NOT NULL,
        ssh_serial TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        history TEXT NOT NULL,
        UNIQUE (bot_name, token_name, pod_uid)
      );
      CREATE TABLE locks (
        name TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        message TEXT,
        expires_at_ms INTEGER,
        created_at_ms INTEGER NOT NULL
      );`,
    postgres: `
      CREATE TABLE bot_instances (
        bot_instance_id TEXT PRIMARY KEY,
        bot_name TEXT NOT NULL,
        token_name TEXT NOT NULL,
        pod_uid TEXT NOT NULL,
        generation BIGINT NOT NULL,
        join_method TEXT NOT NULL,
        join_type TEXT NOT NULL,
        namespace TEXT NOT NULL,
        service_account TEXT NOT NULL,
        pod_name TEXT NOT NULL,
        node_name TEXT,
        first_join_ms BIGINT NOT NULL,
        last_join_ms BIGINT NOT NULL,
        tls_serial TEXT NOT NULL,
        ssh_serial TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        history JSONB NOT NULL,
        UNIQUE (bot_name, token_name, pod_uid)
      );
      CREATE TABLE locks (
        name TEXT PRIMARY KEY,
        target JSONB NOT NULL,
        message TEXT,
        expires_at_ms BIGINT,
        created_at_ms BIGINT NOT NULL
      );`,
  },
];

/** The schema this kube-join writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** The same statement in both engines. */
export const CREATE_SCHEMA_VERSION_TABLE =
  "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at_ms BIGINT NOT NULL)";

/** Migrations still to apply to a database at `current`; refuses a newer database. */
export function pendingMigrations(current: number, location: string): readonly Migration[] {
  if (current > SCHEMA_VERSION) {
    throw new StoreOpenError(
      `the store at ${location} has schema version ${current}, newer than this kube-join's ` +
        `(${SCHEMA_VERSION}): a newer kube-join wrote it. Run that version (or newer), or ` +
        "point store at another database; this kube-join changes nothing in it",
    );
  }
  return MIGRATIONS.filter((m) => m.version > current);
}
