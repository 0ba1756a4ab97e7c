/** Offer objects for the runtime's unit tests (what the API server would return). */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { chainInfo } from "../../api/chains";
import type { PaymentGate } from "../../controller/gateway/paymentGate";
import { createPublicHandler } from "../../controller/gateway/server";
import { RouteState } from "../../controller/gateway/state";
import type { ServiceOfferObject } from "../../controller/shared/kube";

export const USDC = chainInfo("eip155:84532")!.usdc!;

export function offerObject(
  name: string,
  spec: Record<string, unknown> = {},
  meta: { created?: string; generation?: number; ready?: boolean; readyGeneration?: number } = {},
): ServiceOfferObject {
  const generation = meta.generation ?? 1;
  return {
    apiVersion: "obol.org/v1alpha1",
    kind: "ServiceOffer",
    metadata: {
      name,
      namespace: "ns",
      uid: `uid-${name}`,
      generation,
      creationTimestamp: new Date(meta.created ?? "2026-01-01T00:00:00Z"),
    },
    spec: {
      type: "http",
      upstream: { url: "http://127.0.0.1:9/base", healthPath: "/health" },
      payment: {
        scheme: "exact",
        network: "eip155:84532",
        payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        asset: USDC,
        price: { perRequest: "0.001" },
        maxTimeoutSeconds: 300,
      },
      path: `/services/${name}`,
      ...spec,
    },
    ...(meta.ready
      ? {
          status: {
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "Ready",
                lastTransitionTime: "2026-01-01T00:00:00Z",
                observedGeneration: meta.readyGeneration ?? generation,
              },
            ],
          },
        }
      : {}),
  };
}

/** A gate that answers 402 and records which offers reached it. */
export function recordingGate(reached: string[]): PaymentGate {
  return {
    name: "recording",
    async handle(_req, res, offer) {
      reached.push(offer.name);
      res.writeHead(402).end();
    },
  };
}

/** The gateway's public handler on loopback over fixed offer objects; `close` stops it. */
export async function startTestGateway(
  objects: readonly ServiceOfferObject[],
  gate: PaymentGate,
): Promise<{ base: string; close: () => void }> {
  const state = new RouteState(
    { offers: () => objects, identity: () => undefined, synced: () => true, version: () => 1 },
    {},
  );
  const server = http.createServer(createPublicHandler({ state, gate, log: () => undefined }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
