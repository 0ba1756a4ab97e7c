/**
 * What every runtime process's Prometheus metrics share: a registry of their own (never the
 * global one, so tests can run several in one process) and the /metrics answer.
 */
import type * as http from "node:http";
import { Registry } from "prom-client";
import { errorMessage } from "./log";

export abstract class MetricsRegistry {
  readonly registry = new Registry();

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Answers a GET /metrics with the registry's text exposition (500 with the reason on failure). */
export function serveMetrics(res: http.ServerResponse, metrics: MetricsRegistry): void {
  metrics.render().then(
    (text) => res.writeHead(200, { "content-type": metrics.contentType }).end(text),
    (err) =>
      res
        .writeHead(500, { "content-type": "text/plain; charset=utf-8" })
        .end(`metrics failed: ${errorMessage(err)}\n`),
  );
}
