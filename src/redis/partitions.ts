/**
 * Users are spread over a fixed number of partitions. Every key of a
 * partition, and every key of its users, carries the partition's hash tag, so
 * on a Redis Cluster each partition lives in one slot (one master) and each
 * script touches one slot. The count is fixed for the life of the data
 * (layout.ts refuses another): a user's partition is a hash of its id modulo
 * the count, and a task id names its partition.
 */

/** Redis Cluster's slot count (CLUSTER KEYSLOT answers 0 … 16383). */
const CLUSTER_SLOTS = 16_384;

/**
 * Enough to spread users over 16 Cluster masters (each partition is one
 * slot, so one master), few enough that an idle drainer's look at each
 * partition costs little.
 */
export const DEFAULT_PARTITIONS = 16;

/** The most partitions TOLLGATE_PARTITIONS allows: every drainer claims from each. */
export const MAX_PARTITIONS = 1_024;

/**
 * A user's partition: FNV-1a (32 bits) over the id's UTF-8 bytes, modulo the
 * count. Stable across versions and hosts; never change it, or users would
 * move away from their queued tasks.
 */
export function partitionOf(userId: string, partitions: number): number {
  if (partitions === 1) return 0;
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(userId, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

/**
 * The hash tag of partition `partition` of `partitions`: the first string
 * `<partition>`, `<partition>.1`, `<partition>.2`, … whose slot lies in the
 * partition's share of the slots ([p, p + 1) × 16384 / partitions). A
 * Cluster made by `redis-cli --cluster create` (and most managed ones) gives
 * each master one contiguous range of slots, so the partitions spread over
 * the masters as evenly as the count allows, instead of where CRC16 happens
 * to put "0", "1", "2", ….
 */
export function partitionTag(partition: number, partitions: number): string {
  const low = Math.floor((partition * CLUSTER_SLOTS) / partitions);
  const high = Math.floor(((partition + 1) * CLUSTER_SLOTS) / partitions);
  for (let attempt = 0; ; attempt++) {
    const tag = attempt === 0 ? String(partition) : `${partition}.${attempt}`;
    const slot = clusterSlotOf(tag);
    if (slot >= low && slot < high) return tag;
  }
}

/** Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, or of the key without one, modulo 16384. */
export function clusterSlotOf(key: string): number {
  const bytes = Buffer.from(key, "utf8");
  const open = bytes.indexOf(0x7b); // "{"
  let start = 0;
  let end = bytes.length;
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // "}"
    // An empty tag ("{}") does not count: the whole key is hashed.
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % CLUSTER_SLOTS;
}
