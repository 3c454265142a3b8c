import { MemoryBotInstanceStore } from "../src/join/bot-instance-store.ts";
import { botInstanceStoreContract } from "./support/bot-instance-store-contract.ts";

botInstanceStoreContract("memory store", () => Promise.resolve(new MemoryBotInstanceStore()));
