/**
 * CustomResourceDefinitions generated from the zod schemas in api/resources.ts, so the API
 * server validates exactly what the runtime parses.
 */
import { z } from "zod";
import { OfferCondition, PurchaseCondition } from "./conditions";
import { KINDS } from "./contract";
import {
  agentIdentitySpecSchema,
  agentIdentityStatusSchema,
  GROUP,
  purchaseRequestSpecSchema,
  purchaseRequestStatusSchema,
  serviceOfferSpecSchema,
  serviceOfferStatusSchema,
  VERSION,
} from "./resources";

type JsonSchema = { [key: string]: unknown };

// Keywords a Kubernetes structural schema accepts; anything else zod emits is dropped.
const KEEP = new Set([
  "type",
  "description",
  "properties",
  "required",
  "items",
  "enum",
  "pattern",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "default",
  "format",
  "additionalProperties",
]);
const FORMATS = new Set(["date-time", "uri", "int64", "int32"]);

/** Turns zod's JSON Schema into a Kubernetes structural schema. */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (!KEEP.has(key)) continue;
    if (key === "properties") {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, toStructural(v)]),
      );
    } else if (key === "items") {
      out.items = toStructural(value as JsonSchema);
    } else if (key === "additionalProperties") {
      // `false` is implied (the API server prunes unknown fields); a map keeps its value schema.
      if (typeof value === "object" && !schema.properties)
        out.additionalProperties = toStructural(value as JsonSchema);
    } else if (key === "format") {
      if (FORMATS.has(value as string)) out.format = value;
    } else if (key === "minimum" || key === "maximum") {
      // zod writes safe-integer bounds for int(); they add nothing.
      if (Math.abs(value as number) < Number.MAX_SAFE_INTEGER) out[key] = value;
    } else {
      out[key] = value;
    }
  }
  if ("const" in schema) out.enum = [schema.const];
  if (!out.type && out.enum) out.type = typeof (out.enum as unknown[])[0];
  return out;
}

export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return toStructural(
    z.toJSONSchema(schema, { target: "openapi-3.0", io: "input", unrepresentable: "any" }) as JsonSchema,
  );
}

export interface CrdDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: {
    name: string;
    type: string;
    jsonPath: string;
    description?: string;
    priority?: number;
  }[];
}

export const CRD_DEFINITIONS: CrdDefinition[] = [
  {
    ...KINDS.serviceOffer,
    shortNames: ["so"],
    spec: serviceOfferSpecSchema,
    status: serviceOfferStatusSchema,
    printerColumns: [
      { name: "Type", type: "string", jsonPath: ".spec.type" },
      { name: "Price", type: "string", jsonPath: ".spec.payment.price.perRequest" },
      { name: "Network", type: "string", jsonPath: ".spec.payment.network" },
      {
        name: OfferCondition.Ready,
        type: "string",
        jsonPath: `.status.conditions[?(@.type=="${OfferCondition.Ready}")].status`,
      },
      { name: "Endpoint", type: "string", jsonPath: ".status.endpoint" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  },
  {
    ...KINDS.agentIdentity,
    shortNames: ["aid"],
    spec: agentIdentitySpecSchema,
    status: agentIdentityStatusSchema,
    printerColumns: [
      { name: "Name", type: "string", jsonPath: ".spec.name" },
      { name: "Chains", type: "string", jsonPath: ".spec.registrations[*].network" },
      { name: "AgentIDs", type: "string", jsonPath: ".spec.registrations[*].agentId" },
      { name: "Active", type: "boolean", jsonPath: ".status.active" },
    ],
  },
  {
    ...KINDS.purchaseRequest,
    shortNames: ["pr"],
    spec: purchaseRequestSpecSchema,
    status: purchaseRequestStatusSchema,
    printerColumns: [
      { name: "Model", type: "string", jsonPath: ".spec.model" },
      { name: "Endpoint", type: "string", jsonPath: ".status.endpoint" },
      { name: "Agent", type: "string", jsonPath: ".spec.agent.agentId", priority: 1 },
      {
        name: PurchaseCondition.Ready,
        type: "string",
        jsonPath: `.status.conditions[?(@.type=="${PurchaseCondition.Ready}")].status`,
      },
      { name: "Spent", type: "string", jsonPath: ".status.spentTotal" },
    ],
  },
];

/** A complete apiextensions.k8s.io/v1 CRD manifest for one definition. */
export function crdManifest(def: CrdDefinition) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: { kind: def.kind, plural: def.plural, singular: def.singular, shortNames: def.shortNames },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              required: ["spec"],
              properties: { spec: jsonSchemaOf(def.spec), status: jsonSchemaOf(def.status) },
            },
          },
        },
      ],
    },
  };
}
