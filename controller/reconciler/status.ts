/**
 * Status writes shared by the reconcilers: a write only when the status changed, one lean merge
 * patch per change, and no second identical write while the informer cache still shows the
 * object from before our own write.
 */
import type * as k8s from "@kubernetes/client-node";
import type { Plural } from "../../api/contract";
import { isApiStatus, type StatusWriter } from "../shared/kube";
import { jsonEqual } from "./conditions";

export class StatusUpdater {
  /** Our last status write per object, until the informer cache shows it. */
  private readonly written = new Map<
    string,
    { readonly over: string | undefined; readonly status: object }
  >();

  constructor(
    private readonly writer: StatusWriter,
    private readonly log: (msg: string) => void,
  ) {}

  /**
   * Writes `status` unless the object already has it. Right after a write the informer cache
   * still holds the object as it was (until the watch event arrives): a reconcile in between
   * compares against what we wrote over that version, so it does not write the same again.
   */
  async write(
    plural: Plural,
    obj: k8s.KubernetesObject & { status?: object },
    status: object,
  ): Promise<void> {
    const name = obj.metadata?.name ?? "";
    const key = `${plural}/${name}`;
    const version = obj.metadata?.resourceVersion;
    const pending = this.written.get(key);
    const observed = pending && pending.over === version ? pending.status : (obj.status ?? {});
    if (pending && pending.over !== version) this.written.delete(key);
    if (jsonEqual(observed, status)) return;
    try {
      await this.writer.patch(plural, name, withRemovals(observed, status));
    } catch (err) {
      this.written.delete(key);
      if (isApiStatus(err, 404)) return; // deleted meanwhile
      throw err;
    }
    this.written.set(key, { over: version, status });
    this.log(`status ${plural}/${name}: ${summary(status)}`);
  }

  /** A deleted object: nothing of ours to remember. */
  forget(plural: Plural, name: string): void {
    this.written.delete(`${plural}/${name}`);
  }

  close(): void {
    this.writer.close();
  }
}

/** A merge patch removes a key only when it is sent as null. */
export function withRemovals(previous: object, next: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...next };
  for (const key of Object.keys(previous)) if (!(key in next)) out[key] = null;
  return out;
}

function summary(status: object): string {
  const conditions =
    (status as { conditions?: { type: string; status: string; reason: string }[] }).conditions ?? [];
  return conditions.map((c) => `${c.type}=${c.status}(${c.reason})`).join(" ");
}
