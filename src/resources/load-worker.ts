/**
 * A resource load worker (see `ResourceLoader`): parses and validates the files it was given, one
 * message per file, then exits. Holds nothing between loads.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { KeySet } from "../jwt/keys.ts";
import { parseResourceFile } from "./load.ts";
import { decode, type FileToParse, type ParsedMessage } from "./loader.ts";
import { toTransferable, type KeySetInTransit } from "./transfer.ts";

const { files } = workerData as { readonly files: readonly FileToParse[] };
// One transferable key set per KeySet, shared across this worker's messages' tokens.
const shared = new Map<KeySet, KeySetInTransit>();
for (const { file, bytes } of files) {
  const message: ParsedMessage = {
    file,
    parsed: toTransferable(parseResourceFile(file, decode(bytes)), shared),
  };
  parentPort?.postMessage(message);
}
