import { MemoryBotInstanceStore } from "../src/join/bot-instance-store.ts";
import { MemoryStore } from "../src/store/memory-store.ts";
import { botInstanceStoreContract } from "./support/bot-instance-store-contract.ts";
import { lockStoreContract } from "./support/lock-store-contract.ts";

botInstanceStoreContract("memory store", () => Promise.resolve(new MemoryBotInstanceStore()));
botInstanceStoreContract("memory engine", () => Promise.resolve(new MemoryStore()));
lockStoreContract("memory engine", () => Promise.resolve(new MemoryStore()));
